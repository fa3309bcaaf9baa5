"""Hydra's composition errors for a misspelt key or group option, as mlproj's one line with a did-you-mean.

Hydra answers `trainer.max_epoch=3` with "use +trainer.max_epoch=3" (the wrong fix: it adds a key nobody
reads) and `data=diabets` with a page of search paths. The entry point composes the config before Hydra does
(mlproj.__main__); when that fails, `explain` says what was meant. `+key` is the right fix only when the key is
an argument of the node's class (a `_target_`'s parameter, a pytorch_lightning.Trainer argument), and then
the message says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf

from mlproj.config.suggest import unknown_key, unknown_option

_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_MERGING = re.compile(r"Error merging override (\S+)")
_MISSING = re.compile(r"Could not find '([^']+)/([^'/]+)'")


def key_of(override: str) -> str:
    """The dotted key an override sets (`+a.b=1`, `++a.b=1`, `~a.b` → `a.b`)."""
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def explain(
    exc: BaseException,
    overrides: list[str],
    compose: Callable[[list[str]], Any],
    options: Callable[[str], list[str]],
) -> str | None:
    """The one line for a composition that failed on an unknown key or option; None for anything else
    (Hydra's own message stays). `compose(overrides)` composes again, `options(group)` lists a group's options."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(exc)
    if isinstance(exc, OverrideParseException):  # Hydra's grammar: quote a value with = [ ] , or spaces
        return f"{_unparsed(overrides)}{text.strip().splitlines()[0]}; quote a value holding special characters"
    found = _MISSING.search(text)
    if isinstance(exc, MissingConfigException) and found:
        group, option = found.groups()
        listed = options(group)
        return unknown_option(group, option, listed) if listed else None
    cause = type(exc.__cause__).__name__
    merging = _MERGING.search(text)
    if merging and cause in ("ValidationError", "ConfigTypeError", "ConfigValueError"):
        return f"{merging.group(1)}: {str(exc.__cause__).splitlines()[0]}"  # a value of the wrong type
    found = _OVERRIDE.search(text)
    if not found or cause not in ("ConfigAttributeError", "ConfigKeyError"):
        return None
    key = found.group(1)
    try:
        cfg = compose([o for o in overrides if key_of(o) != key])
    except Exception:  # another override fails too: Hydra reports the first
        return None
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not OmegaConf.is_dict(node):
        return None
    known = [str(k) for k in node if k != "hydra" and not str(k).startswith("_")]
    extra, what = _arguments(node, parent)
    if name in extra:
        value = next(o.split("=", 1)[1] for o in overrides if key_of(o) == key and "=" in o)
        return f"{key} is not in the config yet but is an argument of {what}: add it with +{key}={value}"
    return unknown_key(
        key, dict.fromkeys([*known, *extra]), "or any pytorch_lightning.Trainer argument" if parent == "trainer" else ""
    )


def _unparsed(overrides: list[str]) -> str:
    """`OVERRIDE: ` for the first override Hydra's grammar cannot read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except Exception:
            return f"{override}: "
    return ""


def _arguments(node: Any, parent: str) -> tuple[list[str], str]:
    """What `+parent.X` may add: the parameters of the node's `_target_` class, or of pl.Trainer."""
    import inspect

    if parent == "trainer":
        import pytorch_lightning as pl

        return list(inspect.signature(pl.Trainer.__init__).parameters), "pytorch_lightning.Trainer"
    target = node.get("_target_") if "_target_" in node else None
    if not isinstance(target, str):
        return [], ""
    from mlproj.config.families import FAMILIES, resolve

    family = parent.split(".")[0] if parent.split(".")[0] in FAMILIES else None
    try:
        cls = resolve(node, family, parent) if family else None
        params = list(inspect.signature(cls).parameters) if cls else []
    except Exception:  # a target that does not resolve is refused later, with its own message
        return [], ""
    return params, target
