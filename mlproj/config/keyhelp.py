"""`python -m mlproj --help KEY`: a key's one-line description and default, read from the schema itself.

The schema's comments are the one source of truth: a field's description is its trailing comment, else the
comment block right above it; a section's is its class docstring. Defaults come from the dataclasses, choices
from their enums, a group's options from the config folder. Only the standard library and the schema: fast.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import io
import re
import tokenize
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from mlproj.config import schema
from mlproj.errors import ConfigError


@dataclass
class KeyHelp:
    key: str
    default: Any
    description: str
    choices: list[str]

    def line(self) -> str:
        shown = "" if self.default is MISSING else f" (default: {_shown(self.default)})"
        choices = f" [choices: {', '.join(self.choices)}]" if self.choices else ""
        return f"{self.key}{shown}: {self.description or '(no description)'}{choices}".rstrip()


def _shown(value: Any) -> str:
    if value == "???":
        return "required"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str):
        return repr(value) if not value or value != value.strip() else value
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _comments(source: str) -> dict[int, str]:
    """line number -> the text of the comment on it."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


def _field_descriptions() -> dict[str, dict[str, str]]:
    """class name -> {field: description} from the schema's comments; class docstrings under ""."""
    source = Path(schema.__file__).read_text()
    lines, comments = source.splitlines(), _comments(source)
    found: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = found.setdefault(node.name, {"": (ast.get_docstring(node) or "").split("\n\n")[0]})
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                fields[item.target.id] = _describe(item, lines, comments)
    return found


def _describe(item: ast.AnnAssign, lines: list[str], comments: dict[int, str]) -> str:
    if item.end_lineno in comments and not lines[item.end_lineno - 1].lstrip().startswith("#"):
        return comments[item.end_lineno]
    above, number = [], item.lineno - 1
    while number in comments and lines[number - 1].lstrip().startswith("#"):
        above.insert(0, comments[number])
        number -= 1
    return " ".join(above)


def _section_classes() -> dict[str, type]:
    """Config's typed sections: trainer -> TrainerConfig, ..."""
    return {
        f.name: f.default_factory  # type: ignore[misc]
        for f in dataclasses.fields(schema.Config)
        if f.default_factory is not MISSING and dataclasses.is_dataclass(f.default_factory)
    }


def _keys_of(cls: type, prefix: str, described: dict[str, dict[str, str]]) -> list[KeyHelp]:
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not MISSING else _factory_default(f)
        kind = type(default) if isinstance(default, enum.Enum) else None
        choices = [m.value for m in kind] if kind else []
        out.append(KeyHelp(prefix + f.name, default, described.get(cls.__name__, {}).get(f.name, ""), choices))
    return out


def _factory_default(f: dataclasses.Field) -> Any:
    if f.default_factory is MISSING:
        return MISSING
    value = f.default_factory()
    return MISSING if dataclasses.is_dataclass(value) else value


def all_keys() -> list[KeyHelp]:
    """Every key of the schema, sections expanded (trainer.max_epochs, ...); a group's default is its option
    in the primary config's defaults list (data: diabetes)."""
    described, sections, chosen = _field_descriptions(), _section_classes(), _default_options()
    out = []
    for item in _keys_of(schema.Config, "", described):
        if item.key in sections:
            out.extend(_keys_of(sections[item.key], f"{item.key}.", described))
        else:
            item.default = chosen.get(item.key, item.default)
            out.append(item)
    return out


def _default_options() -> dict[str, Any]:
    import yaml

    primary = yaml.safe_load((Path(schema.config_dir()) / "config.yaml").read_text()) or {}
    return {k: v for entry in primary.get("defaults", []) if isinstance(entry, dict) for k, v in entry.items()}


def _group_options(group: str) -> list[str]:
    folder = Path(schema.config_dir()) / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def key_help(key: str) -> str:
    """The lines `--help KEY` prints: one key, or every key of a section; a ConfigError for an unknown key."""
    key = key.lstrip("+")
    described, sections, keys = _field_descriptions(), _section_classes(), all_keys()
    if key in sections:
        head = described.get(sections[key].__name__, {}).get("", "") or described["Config"].get(key, "")
        rows = [k.line() for k in keys if k.key.startswith(key + ".")]
        return "\n".join([f"{key}: {head}".rstrip(), *(f"  {row}" for row in rows)])
    for item in keys:
        if item.key == key:
            options = _group_options(key)
            extra = f"\n  options ({key}=NAME): {', '.join(options)}" if options else ""
            return item.line() + extra
    found = _target_keyword(key, [k.key for k in keys if k.key not in sections])
    if found is not None:
        return found
    raise ConfigError(_unknown(key, [k.key for k in keys] + list(sections)))


def _target_keyword(key: str, tops: list[str]) -> str | None:
    """data.val_fraction, model.hidden_sizes: keywords of a `_target_` node's class, their default from the
    default config (the class's signature is their schema)."""
    section = key.partition(".")[0]
    if "." not in key or section not in tops:
        return None
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=schema.config_dir(), version_base="1.3"):
        cfg = compose(config_name="config")
    missing = object()
    value = OmegaConf.select(cfg, key, default=missing, throw_on_missing=False)
    if value is missing:
        return None
    target = OmegaConf.select(cfg, f"{section}._target_", default=None)
    owner = f"a keyword of {target}" if target else f"a key of {section}"
    return f"{key} (default: {_shown(value)}): {owner}; its other options may differ (--cfg job {section}=NAME)"


def _unknown(key: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    section = key.partition(".")[0]
    if "." in key and section in {k.split(".")[0] for k in known if "." in k}:
        names = [k.partition(".")[2] for k in known if k.startswith(section + ".")]
        return f"--help {key}: not a setting of {section}; {hint}keys: {', '.join(names)}"
    tops = sorted({k.split(".")[0] for k in known})
    return f"--help {key}: not a setting; {hint}settings: {', '.join(tops)} (a section, or SECTION.KEY)"


def overview() -> str:
    """What plain `--help` adds after Hydra's own help: every key, its default and the first sentence."""
    rows = []
    for item in all_keys():
        first = re.split(r"\.\s+(?=[A-Z`(])", item.description)[0].rstrip(".")
        rows.append(KeyHelp(item.key, item.default, first, []).line())
    return "\n".join(["== Settings (python -m mlproj --help KEY for one, with its choices) ==", *rows])
