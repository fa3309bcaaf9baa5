"""A `config.yaml` in `--config-dir` is the user's primary config, as a Hydra user expects.

Hydra appends `--config-dir` after the application's own config folder, so mlproj's `conf/config.yaml` would
win silently. Instead such a folder becomes the primary config path (`--config-path`), with mlproj's own
folder after it on the search path (its groups: data=wine, model=mlp, ...). The user's config must compose
under mlproj's schema: its defaults list starts with `mlproj_schema`, else one line says so.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mlproj.errors import ConfigError

CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
NAME_FLAGS = ("--config-name", "-cn", "--config-path", "-cp")


def user_primary(argv: list[str], package_conf: str) -> list[str]:
    """argv with `--config-dir D` turned into D as the primary config path when D holds a config.yaml."""
    folder, at = _flag_value(argv, CONFIG_DIR_FLAGS)
    if folder is None or _flag_value(argv, NAME_FLAGS)[0] is not None:
        return argv
    primary = Path(folder).resolve() / "config.yaml"
    if not primary.is_file():
        return argv
    users = check_schema_in_defaults(primary)
    searchpath = f"hydra.searchpath=[file://{Path(package_conf).resolve()}]"
    rest = [a for i, a in enumerate(argv) if i not in at]
    mlproj_hydra = hydra_settings(Path(package_conf) / "config.yaml", users.get("hydra") or {})
    return ["--config-path", str(primary.parent), *rest, searchpath, *mlproj_hydra]


def hydra_settings(package_primary: Path, users: dict) -> list[str]:
    """mlproj's own `hydra:` settings the user's config leaves unset, as overrides: the sweep callback (parent
    run, summary), the job's name, unique output folders."""
    mlproj = (yaml.safe_load(package_primary.read_text()) or {}).get("hydra") or {}
    return [f"++hydra.{key}={_value(value)}" for key, value in _leaves(mlproj) if key not in dict(_leaves(users))]


def _leaves(node: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in node.items():
        out += _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]
    return out


def _value(value: object) -> str:
    if isinstance(value, str):  # quoted: Hydra keeps `${...}` in it for OmegaConf to resolve
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def check_schema_in_defaults(primary: Path) -> dict:
    try:
        loaded = yaml.safe_load(primary.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{primary}: not YAML ({str(exc).splitlines()[0]})") from None
    defaults = loaded.get("defaults", []) if isinstance(loaded, dict) else []
    if "mlproj_schema" not in defaults:
        raise ConfigError(
            f"{primary} replaces mlproj's primary config: its defaults list must start with `- mlproj_schema` "
            "(then `- _self_` and the groups, as in mlproj's conf/config.yaml), or rename it and use --config-name"
        )
    return loaded


def _flag_value(argv: list[str], flags: tuple[str, ...]) -> tuple[str | None, set[int]]:
    """The value of `--flag V` or `--flag=V`, and the argv positions it takes."""
    for i, arg in enumerate(argv):
        if arg in flags and i + 1 < len(argv):
            return argv[i + 1], {i, i + 1}
        name, eq, value = arg.partition("=")
        if eq and name in flags:
            return value, {i}
    return None, set()
