"""Typed instantiation of `_target_` nodes: one rule for every node, at startup and when a model is loaded.

Every `_target_` node has a family (model → torch.nn.Module, optimizer → torch.optim.Optimizer, ...), and a
target is accepted only if it is a class of that family: a function or any other class is refused before
anything is called. The class's signature is then its schema (LightningCLI-style): unknown keys are refused
with the list of parameters, required values must be set, and values are checked against the type hints
(pydantic does the checking, so `Literal` choices and `list[int]` read as users expect). A nested `_target_`
is allowed only directly under a parameter whose type hint is a class of a family, and must be a subclass of
that hinted class. `build` then instantiates the node itself (not `hydra.utils.instantiate`).

This module is imported by the packaged model's loader: it must stay light (no Hydra, no Lightning; OmegaConf
only when given an OmegaConf node). Family base classes are imported only when a node of that family is
checked.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj.config.suggest import closest
from mlproj.errors import ConfigError

_SPECIAL = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


@dataclass(frozen=True)
class Family:
    """`display` names the family in errors; `bases` must import, `optional` bases are used when importable."""

    name: str
    display: str
    bases: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def classes(self, imported_only: bool = False) -> tuple[type, ...]:
        """The base classes. `imported_only`: only those whose module is already imported (a class can only
        subclass a base that is already imported, so this answers `issubclass` without importing anything)."""
        found = []
        for dotted in (*self.bases, *self.optional):
            module, _, name = dotted.rpartition(".")
            if imported_only and module not in sys.modules:
                continue
            try:
                found.append(getattr(importlib.import_module(module), name))
            except (ImportError, AttributeError):
                if dotted in self.bases and not imported_only:
                    raise ConfigError(f"cannot check the {self.display} family: {dotted} is not importable") from None
        return tuple(found)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("model", "torch.nn.Module", ("torch.nn.Module",)),
        Family("optimizer", "torch.optim.Optimizer", ("torch.optim.Optimizer",)),
        Family(
            "scheduler",
            "torch.optim.lr_scheduler.LRScheduler",
            ("torch.optim.lr_scheduler.LRScheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau"),
        ),
        Family(
            "task",
            "pytorch_lightning.LightningModule",
            ("pytorch_lightning.LightningModule",),
            ("lightning.pytorch.LightningModule",),
        ),
        Family(
            "data",
            "pytorch_lightning.LightningDataModule",
            ("pytorch_lightning.LightningDataModule",),
            ("lightning.pytorch.LightningDataModule", "mlproj.data.base.DataSource"),
        ),
        Family("loss", "torch.nn.Module", ("torch.nn.Module",)),
        Family("metric", "torchmetrics.Metric", ("torchmetrics.Metric",)),
        Family(
            "callback", "pytorch_lightning.Callback", ("pytorch_lightning.Callback",), ("lightning.pytorch.Callback",)
        ),
        Family("hydra_callback", "hydra.experimental.callback.Callback", ("hydra.experimental.callback.Callback",)),
        Family("launcher", "hydra.plugins.launcher.Launcher", ("hydra.plugins.launcher.Launcher",)),
        Family("sweeper", "hydra.plugins.sweeper.Sweeper", ("hydra.plugins.sweeper.Sweeper",)),
    )
}

_FAMILY_NAMES = ", ".join(dict.fromkeys(f.display for f in FAMILIES.values()))


# ----------------------------------------------------------------------------------------------- resolve


def resolve(node: Any, family: str, key: str, origin: Path | None = None) -> type:
    """The class named by node["_target_"], if it is a class of `family`; else ConfigError (one line).

    With `origin`, the target's module must come from that folder, the standard library, or an installed
    distribution (site-packages, or an mlproj itself): checked before a module not yet imported is imported."""
    fam = FAMILIES[family]
    if not _is_mapping(node) or "_target_" not in node:
        raise ConfigError(f"{key} needs a _target_ (the class to instantiate); pick one with {key}=<option>")
    target = node["_target_"]
    if not isinstance(target, str) or not target or not all(p.isidentifier() for p in target.split(".")):
        raise ConfigError(f"{key}._target_={target!r} is not a dotted class name")
    parts = target.split(".")
    preloaded = set(sys.modules)  # imported before this load, by trusted code: naming them imports nothing new
    if origin is not None and parts[0] not in preloaded:
        _check_origin(parts[0], target, key, origin)
    try:
        obj = _locate(parts)
    except Exception as exc:  # any import failure is the user's to see, in one line
        raise ConfigError(f"{key}._target_={target!r} cannot be imported: {' '.join(str(exc).split())}") from None
    if not inspect.isclass(obj):
        what = "a function" if callable(obj) else f"a {type(obj).__name__}"
        raise ConfigError(f"{key}._target_={target!r} is {what}, not a class of {fam.display}")
    # Only the bases already imported: a subclass of a base imports it, so none is missed, and checking
    # mlproj's own DataSource does not import Lightning (seconds) for a config that may yet be refused.
    if not issubclass(obj, fam.classes(imported_only=True)):
        raise ConfigError(f"{key}._target_={target!r} is not a {fam.display} class")
    if origin is not None:
        for name in {obj.__module__.split(".")[0], *_module_names(obj)} - preloaded:
            _check_origin(name, target, key, origin)
    return obj


def _locate(parts: list[str]) -> Any:
    """Import `a.b.C` as Hydra does: the longest importable module, then attributes."""
    obj: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        if not isinstance(obj, types.ModuleType):
            raise AttributeError(f"{'.'.join(parts[:i])} has no attribute {part!r}")
        obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


def _module_names(cls: type) -> set[str]:
    return {c.__module__.split(".")[0] for c in cls.__mro__ if c.__module__ not in ("builtins",)}


def _check_origin(top: str, target: str, key: str, origin: Path) -> None:
    files = _module_files(top)
    if files is None:
        return  # built in to the interpreter
    if not files:
        raise ConfigError(f"{key}._target_={target!r}: module {top!r} is not found")
    roots = _trusted_roots(origin)
    for file in files:
        path = Path(file).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            raise ConfigError(
                f"{key}._target_={target!r} comes from {path}, which is neither the model's code folder "
                "nor an installed package"
            )


def _module_files(top: str) -> list[str] | None:
    """Where the top-level module lives, found without executing it where possible (None: built in)."""
    module = sys.modules.get(top)
    if module is not None:
        if getattr(module, "__file__", None):
            return [module.__file__]
        path = list(getattr(module, "__path__", []) or [])
        if path:
            return path
        return None if top in sys.builtin_module_names else []
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.origin in ("built-in", "frozen"):
        return None
    if spec.origin and spec.has_location:
        return [spec.origin]
    return list(spec.submodule_search_locations or [])


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    found = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    found += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    found.append(site.getusersitepackages())
    # The package doing this check is the loader itself: what it runs from is trusted by definition.
    found.append(str(Path(__file__).resolve().parents[1]))
    return tuple(Path(p).resolve() for p in found if p)


def installed(path: Path) -> bool:
    """Whether a module file lies in the standard library, site-packages, or mlproj itself. Anything else (a
    folder on PYTHONPATH, the working directory, an editable install's source tree) is the user's own code: it
    is shipped in a packaged model's code/ folder (mlproj.packaging.code) and only loaded from there."""
    return any(Path(path).resolve().is_relative_to(root) for root in _installed_roots())


def container(node: Any) -> dict[str, Any]:
    """A `_target_` node as plain Python (resolved), as a packaged model stores it."""
    return _plain(node)[0]


def _trusted_roots(origin: Path) -> tuple[Path, ...]:
    return (Path(origin).resolve(), *_installed_roots())


# ------------------------------------------------------------------------------------------------- check


@dataclass
class _Checked:
    cls: type
    values: dict[str, Any]  # the node's own keys (plain Python), specials removed
    partial: bool
    accepted: set[str] | None  # parameter names, None when the signature is not introspectable
    nested: dict[str, str]  # parameter → family of its nested `_target_` node


def check(
    node: Any,
    family: str,
    key: str,
    required: Iterable[str] = (),
    offered: Iterable[str] = (),
    origin: Path | None = None,
) -> type:
    """resolve(), then the node's keys against the class's signature and type hints, nested nodes included.

    `required`: names mlproj passes itself (the constructor must accept them; the config must not set them).
    `offered`: names mlproj passes only when the constructor has that parameter and the config does not set it.
    """
    return _check(node, family, key, set(required), set(offered), origin).cls


def _check(node: Any, family: str, key: str, required: set[str], offered: set[str], origin: Path | None) -> _Checked:
    cls = resolve(node, family, key, origin)
    target = node["_target_"]
    values, resolved = _plain(node)
    if "_args_" in values:
        raise ConfigError(f"{key}._args_: positional arguments are not accepted; use named arguments")
    partial = bool(values.get("_partial_", False))
    given = {k: v for k, v in values.items() if k not in _SPECIAL}
    try:
        params = dict(inspect.signature(cls).parameters)
    except (TypeError, ValueError):  # no introspectable signature (some C extensions)
        for name, value in given.items():
            _refuse_nested(f"{key}.{name}", value, target)
        return _Checked(cls, given, partial, None, {})
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    settable = [n for n in accepted if n not in required]
    for name in given:
        if name in required:
            raise ConfigError(f"{key}.{name} is set by mlproj; do not set it in the config")
        if name not in params and not open_kwargs:
            match = closest(name, settable)
            known = f"did you mean {match}?" if match else f"parameters: {', '.join(settable)}"
            raise ConfigError(f"{key}.{name} is not a parameter of {target}; {known}")
    takes = [n for n in sorted(required) if n not in params and not open_kwargs]
    if takes:
        raise ConfigError(f"{key}._target_={target!r} must accept {', '.join(takes)} (passed by mlproj)")
    missing = [
        n
        for n in accepted
        if params[n].default is inspect.Parameter.empty
        and params[n].kind is not inspect.Parameter.POSITIONAL_ONLY
        and n not in given
        and n not in required
        and n not in offered
    ]
    if missing and not partial:
        raise ConfigError(f"{key} is missing required value(s) for {target}: {', '.join(missing)}")
    hints = _type_hints(cls)
    nested: dict[str, str] = {}
    for name, value in given.items():
        sub = f"{key}.{name}"
        if _is_node(value):
            hinted = _family_classes(hints.get(name))
            if not hinted:
                raise ConfigError(
                    f"{sub}: a nested _target_ is only allowed where the parameter is typed as a class of a family "
                    f"({_FAMILY_NAMES}); {target} has no parameter typed so"
                )
            inner = value.get("_target_")
            sub_family = hinted[0][1]
            inner_cls = _check(value, sub_family, sub, set(), set(), origin).cls
            if not issubclass(inner_cls, tuple(c for c, _ in hinted)):
                names = ", ".join(f"{c.__module__}.{c.__qualname__}" for c, _ in hinted)
                raise ConfigError(f"{sub}._target_={inner!r} is not a subclass of {names}, the type of {target}.{name}")
            nested[name] = next(f for c, f in hinted if issubclass(inner_cls, c))
            continue
        _refuse_nested(sub, value, target)
        if resolved and name in hints:
            check_value(sub, value, hints[name])
    return _Checked(cls, given, partial, set(accepted), nested)


def _is_mapping(node: Any) -> bool:
    return isinstance(node, Mapping)


def _is_node(value: Any) -> bool:
    return isinstance(value, dict) and "_target_" in value


def _refuse_nested(key: str, value: Any, target: str) -> None:
    """Inside lists and dicts a `_target_` is never instantiated by mlproj: refuse it rather than pass it on."""
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        if "_target_" in value:
            raise ConfigError(
                f"{key}: a nested _target_ is only allowed where the parameter is typed as a class of a family "
                f"({_FAMILY_NAMES}); {target} has no parameter typed so"
            )
        items = ((f"{key}.{k}", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    for sub, v in items:
        _refuse_nested(sub, v, target)


def _plain(node: Any) -> tuple[dict[str, Any], bool]:
    """The node as plain Python containers, interpolations resolved (False when some cannot be resolved yet,
    e.g. a Hydra node read before its job exists: values are then not type-checked)."""
    if isinstance(node, dict):
        return dict(node), True
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(node, resolve=True), True  # type: ignore[return-value]
    except Exception:
        return OmegaConf.to_container(node, resolve=False), False  # type: ignore[return-value]


def _family_classes(hint: Any) -> list[tuple[type, str]]:
    """The classes in a parameter's hint (itself, or a member of a Union/Optional/Annotated) that belong to a
    family, with that family's name. Generic containers (list[nn.Module]) do not count."""
    if hint is None:
        return []
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _family_classes(typing.get_args(hint)[0])
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return [pair for arg in typing.get_args(hint) for pair in _family_classes(arg)]
    if origin is type or not inspect.isclass(hint):
        return []
    for name, fam in FAMILIES.items():
        bases = fam.classes(imported_only=True)
        if bases and issubclass(hint, bases):
            return [(hint, name)]
    return []


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj, include_extras=True)
    except Exception:  # unresolvable annotations: skip the type layer, keep the key checks
        return {}


def check_value(key: str, value: Any, hint: Any) -> None:
    try:
        from pydantic import TypeAdapter, ValidationError
    except ImportError:  # a serving environment without pydantic: keys are still checked
        return
    try:
        adapter = TypeAdapter(hint)
    except Exception:  # a type pydantic cannot describe (e.g. torch.Tensor): not checked
        return
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise ConfigError(f"{key}={value!r}: {message}") from None


# ------------------------------------------------------------------------------------------------- build


def build(
    node: Any,
    family: str,
    key: str,
    required: dict[str, Any] | None = None,
    offered: dict[str, Any] | None = None,
    origin: Path | None = None,
) -> Any:
    """check(), then instantiate the node: nested family nodes first, `required` always passed, `offered`
    passed where the constructor takes it and the config did not set it; `_partial_: true` gives a
    functools.partial of the class."""
    required, offered = dict(required or {}), dict(offered or {})
    checked = _check(node, family, key, set(required), set(offered), origin)
    kwargs = {}
    for name, value in checked.values.items():
        if name in checked.nested:
            value = build(value, checked.nested[name], f"{key}.{name}", origin=origin)
        kwargs[name] = value
    kwargs.update(required)
    for name, value in offered.items():
        if name not in checked.values and checked.accepted is not None and name in checked.accepted:
            kwargs[name] = value
    if checked.partial:
        return functools.partial(checked.cls, **kwargs)
    return checked.cls(**kwargs)


# ----------------------------------------------------------------------------------------------- startup


def check_targets(cfg: Any) -> None:
    """Every `_target_` node of a training config but `task` (mlproj.plan.check_task, which knows the built-in
    task's parts), before anything runs. Raises ConfigError naming the key."""
    from omegaconf import DictConfig, OmegaConf

    check(cfg.model, "model", "model", required=("in_features", "out_features"), offered=("in_shape",))
    check(cfg.optimizer, "optimizer", "optimizer", required=("params",))
    if _is_set(cfg.get("scheduler")):
        check(cfg.scheduler, "scheduler", "scheduler", required=("optimizer",))
    loss = OmegaConf.select(cfg, "loss", default=None)
    if _is_set(loss):
        check(loss, "loss", "loss")
    for group, family, offered in (("metrics", "metric", ("task", "num_classes")),):  # callbacks: check_config
        nodes = OmegaConf.select(cfg, group, default=None)
        if isinstance(nodes, DictConfig):
            for name, sub in nodes.items():
                if _is_set(sub):
                    check(sub, family, f"{group}.{name}", offered=offered)
    data = OmegaConf.select(cfg, "data", default=None)
    if isinstance(data, DictConfig) and "_target_" in data:
        check(data, "data", "data")
    from mlproj.config.constraints import check_node

    for part in ("model", "optimizer", "scheduler", "loss"):  # lr > 0, 0 <= dropout < 1, ... (constraints.py)
        node = OmegaConf.select(cfg, part, default=None)
        if _is_set(node):
            check_node(part, part, container(node))


def check_hydra_targets(cfg: Any) -> None:
    """Hydra's own `_target_` nodes, which Hydra instantiates before the task runs: hydra.callbacks.*,
    hydra.launcher and hydra.sweeper, each against its family."""
    from omegaconf import DictConfig, OmegaConf

    callbacks = OmegaConf.select(cfg, "hydra.callbacks", default=None)
    if isinstance(callbacks, DictConfig):
        for name, node in callbacks.items():
            if node is not None:
                check(node, "hydra_callback", f"hydra.callbacks.{name}")
    for part in ("launcher", "sweeper"):
        node = OmegaConf.select(cfg, f"hydra.{part}", default=None)
        if node is not None:
            found = check(node, part, f"hydra.{part}")
            if callable(getattr(found, "check_config", None)):  # its values too (the project's Optuna sweeper)
                found.check_config(node)


def _is_set(node: Any) -> bool:
    return node is not None and not (_is_mapping(node) and len(node) == 0)
