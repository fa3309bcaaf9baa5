"""Any `pytorch_lightning.Trainer` argument as `+trainer.X=...`, and callbacks as `_target_` nodes.

`trainer` keys that TrainerConfig does not have are accepted when they are parameters of
`pytorch_lightning.Trainer.__init__`, their values checked against its type hints (pydantic), except the few
that contradict what mlproj does itself (REFUSED). The checks run at startup (`check_config`), before any
side effect, and import Lightning only when there is something to check.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlproj.config.families import check_value
from mlproj.config.suggest import closest, unknown_key
from mlproj.errors import ConfigError

# Trainer arguments mlproj sets itself: key -> why, and what to use instead.
REFUSED = {
    "logger": "mlproj logs to its own MLflow run (tracking.*)",
    "callbacks": "add one with +callbacks.<name>._target_=<class> (or +callbacks=lr_monitor)",
    "default_root_dir": "the run's folder is Hydra's output dir (hydra.run.dir)",
    "enable_progress_bar": "use trainer.progress_bar=auto|rich|plain|none",
    "enable_model_summary": "use trainer.model_summary=true|false",
    "enable_checkpointing": "resume and the best-model selection need mlproj's checkpoints",
    "barebones": "it turns off the logging and checkpointing mlproj's runs need",
    "model_registry": "mlproj registers models in MLflow (registry.*)",
    "enable_autolog_hparams": "mlproj logs the resolved config as the run's params itself",
}

# Passed to pl.Trainer only for a module with automatic optimization; mlproj's own task implements them.
TASK_FLAGS = ("accumulate_grad_batches", "gradient_clip_algorithm")


def _schema_keys() -> list[str]:
    from mlproj.config.schema import TrainerConfig

    return [f.name for f in fields(TrainerConfig)]


def extra_flags(cfg: Any) -> dict[str, Any]:
    """The `trainer` keys TrainerConfig does not have (the `+trainer.X=...` ones), resolved.

    Read with to_container: `OmegaConf.to_object` drops keys its dataclass lacks."""
    if is_dataclass(cfg) and not isinstance(cfg, DictConfig):
        return {}
    values = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    assert isinstance(values, dict)
    known = set(_schema_keys())
    return {str(k): v for k, v in values.items() if k not in known}


def task_options(cfg: Any) -> dict[str, Any]:
    """The trainer options the built-in task implements itself (manual optimization), as its keyword arguments."""
    flags = extra_flags(cfg)
    return {
        "monitor": cfg.monitor,
        "gradient_clip_val": cfg.gradient_clip_val,
        "gradient_clip_algorithm": flags.get("gradient_clip_algorithm") or "norm",
        "accumulate_grad_batches": flags.get("accumulate_grad_batches") or 1,
        "log_every_n_steps": cfg.log_every_n_steps,
        "compile": cfg.compile,
    }


def _trainer_parameters() -> tuple[list[str], dict[str, Any]]:
    import pytorch_lightning as pl

    params = [n for n in inspect.signature(pl.Trainer.__init__).parameters if n != "self"]
    try:
        hints = typing.get_type_hints(pl.Trainer.__init__)
    except Exception:  # unresolvable annotations: the key checks still apply
        hints = {}
    return params, hints


def check_trainer_flags(trainer_node: Any) -> None:
    """Refuse a `trainer` key that is neither mlproj's nor a Trainer argument, one mlproj sets itself, or a
    value its type hint rejects. Raises ConfigError naming the key."""
    extra = extra_flags(trainer_node)
    if not extra:
        return  # nothing to check: Lightning is not imported
    params, hints = _trainer_parameters()
    for key, value in extra.items():
        if key in REFUSED:
            raise ConfigError(f"trainer.{key} cannot be set: {REFUSED[key]}")
        if key not in params:
            # did-you-mean among mlproj's keys first: a typo of max_epochs is not meant as a Trainer argument
            known = _schema_keys()
            if closest(key, [*known, *params]):  # the closest of all; the list, when none is, only mlproj's keys
                known = [*known, *params]
            raise ConfigError(unknown_key(f"trainer.{key}", known, "or any pytorch_lightning.Trainer argument"))
        if key in hints:
            check_value(f"trainer.{key}", value, hints[key])
    accumulate = extra.get("accumulate_grad_batches")
    if accumulate is not None and accumulate < 1:
        raise ConfigError(f"trainer.accumulate_grad_batches={accumulate} must be >= 1")
    algorithm = extra.get("gradient_clip_algorithm")
    if algorithm is not None and algorithm not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm={algorithm!r} is not valid; choose one of: norm, value")


def check_callbacks(node: Any) -> None:
    """Each `callbacks.<name>` names a Lightning Callback class, with values its signature accepts."""
    from mlproj.config import families

    for name in node or {}:
        families.check(node[name], "callback", f"callbacks.{name}")


def build_callbacks(node: Any) -> list[Any]:
    """The `callbacks` mapping (name -> `_target_` node) as Lightning callbacks, in the mapping's order."""
    from mlproj.config import families

    return [families.build(node[name], "callback", f"callbacks.{name}") for name in node or {}]
