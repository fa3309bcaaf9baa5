"""Startup checks of `_target_` nodes (model, optimizer, scheduler), LightningCLI-style.

Any importable class can be plugged in through `_target_`, so its schema is its own signature: unknown keys
are refused with the list of accepted parameters, and values are checked against the type hints (pydantic
does the checking, so `Literal` choices and `list[int]` read as users expect).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlproj.errors import ConfigError

# What mlproj passes itself, per group: never expected in the config.
INJECTED = {
    "model": {"in_features", "out_features"},
    "optimizer": {"params"},
    "scheduler": {"optimizer"},
}


def check_targets(cfg: DictConfig) -> None:
    check_target(cfg.model, "model")
    check_target(cfg.optimizer, "optimizer")
    if _is_set(cfg.scheduler):
        check_target(cfg.scheduler, "scheduler")
    if "lr" in cfg.optimizer and not float(cfg.optimizer.lr) > 0:
        raise ConfigError(f"optimizer.lr={cfg.optimizer.lr} must be > 0")
    if float(cfg.optimizer.get("weight_decay", 0.0) or 0.0) < 0:
        raise ConfigError(f"optimizer.weight_decay={cfg.optimizer.weight_decay} must be >= 0")


def _is_set(node: Any) -> bool:
    return node is not None and not (isinstance(node, DictConfig) and len(node) == 0)


def check_target(node: Any, key: str) -> None:
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{key} needs a _target_ (the class to instantiate); pick one with {key}=<option>")
    values = OmegaConf.to_container(node, resolve=True)
    assert isinstance(values, dict)
    target = values.pop("_target_")
    try:
        from hydra.utils import get_object

        obj = get_object(target)
    except Exception as exc:  # any import failure is the user's to see, in one line
        raise ConfigError(f"{key}._target_={target!r} cannot be imported: {' '.join(str(exc).split())}") from None
    given = {k: v for k, v in values.items() if not k.startswith("_")}
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return  # no introspectable signature (some C extensions): nothing more to check
    injected = INJECTED.get(key, set())
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    settable = [n for n in accepted if n not in injected]
    for name in given:
        if name not in params and not open_kwargs:
            raise ConfigError(f"{key}.{name} is not a parameter of {target}; parameters: {', '.join(settable)}")
        if name in injected:
            raise ConfigError(f"{key}.{name} is set by mlproj; do not set it in the config")
    takes = [n for n in sorted(injected) if n not in params and not open_kwargs]
    if takes:
        raise ConfigError(f"{key}._target_={target!r} must accept {', '.join(takes)} (passed by mlproj)")
    missing = [
        n for n in accepted if params[n].default is inspect.Parameter.empty and n not in given and n not in injected
    ]
    if missing:
        raise ConfigError(f"{key} is missing required value(s) for {target}: {', '.join(missing)}")
    hints = _type_hints(obj)
    for name, value in given.items():
        if name in hints:
            _check_value(f"{key}.{name}", value, hints[name])


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # unresolvable annotations: skip the type layer, keep the key checks
        return {}


def _check_value(key: str, value: Any, hint: Any) -> None:
    from pydantic import TypeAdapter, ValidationError

    try:
        adapter = TypeAdapter(hint)
    except Exception:  # a type pydantic cannot describe (e.g. torch.Tensor): not checked
        return
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise ConfigError(f"{key}={value!r}: {message}") from None


# --- TEMPORARY shim until the families branch lands (resolve/build with the same API) ----------------------
def resolve(node: Any, family: str, key: str, origin: Any = None) -> type:
    from hydra.utils import get_class

    return get_class(node["_target_"])


def build(
    node: Any, family: str, key: str, required: dict | None = None, offered: dict | None = None, origin: Any = None
) -> Any:
    from hydra.utils import instantiate

    cls = resolve(node, family, key)
    params = inspect.signature(cls).parameters
    given = set(node.keys()) if hasattr(node, "keys") else set()
    extra = {k: v for k, v in (offered or {}).items() if k in params and k not in given}
    return instantiate(node, **(required or {}), **extra, _convert_="all")


def container(node: Any) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def installed(path: Any) -> bool:
    import site
    import sysconfig
    from pathlib import Path

    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")} | set(
        site.getsitepackages()
    )
    return any(Path(path).resolve().is_relative_to(Path(r).resolve()) for r in roots)
