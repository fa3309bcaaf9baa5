"""Cross-field checks a type cannot express (ranges, choices, metric names, devices), run at startup before
any side effect. Each raises ConfigError naming the key."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlproj.config.schema import (
    PRECISIONS,
    Backend,
    Config,
    RegistryConfig,
    Strategy,
    SweepConfig,
    TrackingConfig,
    TrainerConfig,
    TunerConfig,
    gate_on,
    plain,
)
from mlproj.config.suggest import unknown_key
from mlproj.errors import ConfigError

_SECTIONS = {
    "trainer": TrainerConfig,
    "tracking": TrackingConfig,
    "registry": RegistryConfig,
    "sweep": SweepConfig,
    "tuner": TunerConfig,
}


def _check_known_keys(cfg: DictConfig) -> None:
    """Hydra's `+key=value` opens a typed node to add a key, so a typo taken from Hydra's own hint
    (`+trainer.max_epoch=5`) would be silently carried along: refuse keys the schema does not have."""
    nodes: dict[str, type] = {f.name: f.type for f in fields(Config)}
    for top in cfg:
        if top == "hydra":
            continue
        if top not in nodes:
            raise ConfigError(unknown_key(str(top), nodes))
        schema = _SECTIONS.get(str(top))
        if schema is None or not OmegaConf.is_dict(cfg[top]):
            continue
        if top == "trainer":  # any pytorch_lightning.Trainer argument too; Lightning imported only for those
            from mlproj.config.flags import check_trainer_flags

            check_trainer_flags(cfg[top])
            continue
        known = [f.name for f in fields(schema)]
        for key in cfg[top]:
            if key not in known:
                raise ConfigError(unknown_key(f"{top}.{key}", known))


_ABSENT = object()


def _missing(node: Any) -> set[str]:
    return OmegaConf.missing_keys(node) if OmegaConf.is_config(node) else set()


_REQUIRED_HINTS = {
    "data.path": " (a .csv or .parquet file)",
    "data.target": " (the label column)",
}


def _choice(key: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def _at_least(key: str, value: float, low: float, inclusive: bool = True) -> None:
    ok = value >= low if inclusive else value > low
    if not ok:
        raise ConfigError(f"{key}={value} must be {'>=' if inclusive else '>'} {low}")


def _check_values(cfg: DictConfig) -> None:
    """Ranges no type says, where a bad value would only fail once the run exists (or never)."""
    t = cfg.trainer
    if t.gradient_clip_val is not None:
        _finite("trainer.gradient_clip_val", t.gradient_clip_val)
        _at_least("trainer.gradient_clip_val", t.gradient_clip_val, 0)
    if not 0 <= cfg.seed <= 2**32 - 1:  # numpy's range: Lightning would fail once the run exists
        raise ConfigError(f"seed={cfg.seed} must be in [0, {2**32 - 1}]")
    if cfg.get("tuner") is not None:
        _finite("tuner.max_lr", cfg.tuner.max_lr)
    _check_requirements(cfg.tracking.extra_pip_requirements)
    from mlproj.config.stores import check_stores

    check_stores(cfg.tracking, cfg.registry.model_name)  # URIs, artifact location, names: before any store


def _finite(key: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value} must be a finite number")


def _check_requirements(requirements: Any) -> None:
    """Each of tracking.extra_pip_requirements must parse as pip would read it (PEP 508)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for item in requirements:
        try:
            Requirement(str(item))
        except InvalidRequirement as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"tracking.extra_pip_requirements: {str(item)!r} is not a requirement ({first})"
            ) from None


def processes_per_node(devices: Any) -> int | None:
    """How many training processes trainer.devices asks for on each node (None: "auto" or -1, all there are)."""
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return len(devices)
    return devices if isinstance(devices, int) and devices >= 1 else None


def check_config(cfg: DictConfig) -> None:
    """Cross-field checks that need no data. Raises ConfigError naming the key."""
    # Hydra's own node (present in callbacks) has keys that are only filled per job: not ours to check.
    missing = {
        k if k.startswith(f"{top}.") else f"{top}.{k}" for top in cfg if top != "hydra" for k in _missing(cfg[top])
    }
    if missing:
        key = sorted(missing)[0]
        raise ConfigError(f"{key} is required{_REQUIRED_HINTS.get(key, '')}; set it with {key}=...")
    _check_known_keys(cfg)
    if cfg.get("callbacks"):
        from mlproj.config.flags import check_callbacks

        check_callbacks(cfg.callbacks)
    t = cfg.trainer
    _at_least("trainer.max_epochs", t.max_epochs, 1)
    _at_least("trainer.min_epochs", t.min_epochs, 0)
    if t.min_epochs > t.max_epochs:
        raise ConfigError(f"trainer.min_epochs={t.min_epochs} exceeds trainer.max_epochs={t.max_epochs}")
    _at_least("trainer.patience", t.patience, 1)
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
        v = t[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or (isinstance(v, float) and v > 1):
            raise ConfigError(f"trainer.{key}={v!r} must be a fraction in [0, 1] or a whole number of batches")
    _choice("trainer.precision", str(t.precision), PRECISIONS)
    for key in ("log_every_n_steps", "steps_per_chunk"):
        if t[key] is not None:
            _at_least(f"trainer.{key}", t[key], 1)
    devices = t.devices
    if OmegaConf.is_list(devices):
        if not devices or not all(isinstance(i, int) and i >= 0 for i in devices):
            raise ConfigError(f"trainer.devices={list(devices)} must be a non-empty list of device ids")
    elif not (devices == "auto" or (isinstance(devices, int) and (devices >= 1 or devices == -1))):
        raise ConfigError(f"trainer.devices={devices!r} must be 'auto', a count >= 1, -1, or a list of ids")
    _at_least("trainer.num_nodes", t.num_nodes, 1)
    _check_values(cfg)
    from mlproj.metrics import parse_condition

    for name, condition in cfg.registry.thresholds.items():
        parse_condition(str(name), condition)
    tuner = cfg.get("tuner")
    if tuner is not None:
        if not 0 < tuner.min_lr < tuner.max_lr:
            raise ConfigError(f"tuner.min_lr={tuner.min_lr} must be > 0 and below tuner.max_lr={tuner.max_lr}")
        for key in ("num_training", "max_trials", "steps_per_trial", "init_val"):
            _at_least(f"tuner.{key}", tuner[key], 1)
        several = t.strategy == Strategy.ddp or (processes_per_node(devices) or 1) > 1 or t.num_nodes > 1
        if (tuner.lr_find or tuner.scale_batch_size) and several:
            raise ConfigError(
                "tuner.lr_find / tuner.scale_batch_size run on one device (Lightning's Tuner does not support "
                "distributed training): tune with trainer.devices=1, then train with the result"
            )
    if t.strategy == Strategy.single_device and ((processes_per_node(devices) or 1) > 1 or t.num_nodes > 1):
        raise ConfigError(
            "trainer.strategy=single_device needs trainer.devices=1 and trainer.num_nodes=1; use trainer.strategy=ddp"
        )
    if cfg.tracking.backend == Backend.server and not cfg.tracking.uri:
        raise ConfigError("tracking.uri is required for tracking=server (e.g. http://127.0.0.1:5000)")
    from mlproj.config.drivers import check_database_uri

    check_database_uri("tracking.uri", cfg.tracking.uri)
    check_database_uri("tracking.registry_uri", cfg.tracking.registry_uri)
    check_database_uri("sweep.storage", cfg.sweep.storage)
    _at_least("tracking.retry_for", cfg.tracking.retry_for, 0)
    for key in cfg.tracking.secret_keys:
        if OmegaConf.select(cfg, str(key), default=_ABSENT, throw_on_missing=False) is _ABSENT:
            raise ConfigError(f"tracking.secret_keys names {key!r}, which is not a config key")
    for name, direction in cfg.metric_directions.items():
        _choice(f"metric_directions.{name}", direction, ("min", "max"))
    check_baseline_and_cv(cfg)
    resume = cfg.resume
    if resume is not None and resume != "auto" and not re.fullmatch(r"[0-9a-f]{32}", str(resume)):
        shown = str(resume).lower() if str(resume) in ("True", "False") else resume  # OmegaConf's str(bool)
        raise ConfigError(f"resume={shown} is not valid; choose one of: null (a new run), auto, or a 32-hex run id")


def check_baseline_and_cv(cfg: DictConfig) -> None:
    if cfg.registry.get("require_beats_baseline") and plain(cfg.get("baseline", "hgb")) == "none":
        raise ConfigError("registry.require_beats_baseline=true needs a baseline: set baseline=hgb or baseline=linear")
    folds = cfg.get("cv", {}).get("folds", 0)
    if folds:
        _at_least("cv.folds", folds, 2)
        if cfg.resume is not None:
            raise ConfigError("cv.folds and resume do not go together: each fold is a new run; set resume=null")
        t = cfg.trainer
        if t.strategy == Strategy.ddp or (processes_per_node(t.devices) or 1) > 1 or t.num_nodes > 1:
            raise ConfigError("cv.folds trains its folds one after another in one process: set trainer.devices=1")


def check_streaming_limits(cfg: DictConfig) -> None:
    """A stream has no length: limits must count batches (called once the data source is known to stream)."""
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        v = cfg.trainer[key]
        if isinstance(v, float) and v not in (0.0, 1.0):
            raise ConfigError(
                f"trainer.{key}={v}: a stream has no length to take a fraction of; give a number of batches"
            )


def check_devices(cfg: DictConfig) -> None:
    """Refuse a GPU request on a machine without one now, rather than after the run was created."""
    import torch

    t = cfg.trainer
    accelerator = plain(t.accelerator)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    strategy = plain(t.strategy)
    if strategy == "ddp" and gpus == 0 and accelerator != "cpu":
        raise ConfigError(
            f"trainer.strategy=ddp with trainer.accelerator={accelerator} but this machine has no CUDA GPU; "
            "set trainer.accelerator=cpu to train in CPU processes over gloo (trainer=ddp_cpu)"
        )
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no CUDA GPU; use trainer=auto or trainer=cpu"
        )
    if accelerator in ("gpu", "cuda"):
        wanted = list(t.devices) if OmegaConf.is_list(t.devices) else []
        if isinstance(t.devices, int) and t.devices > gpus:
            raise ConfigError(f"trainer.devices={t.devices} but this machine has {gpus} GPU(s)")
        if any(i >= gpus for i in wanted):
            raise ConfigError(f"trainer.devices={wanted} names a GPU this machine lacks (ids 0..{gpus - 1})")
    if gpus == 0 and str(t.precision).startswith("16"):
        raise ConfigError(f"trainer.precision={t.precision} needs a GPU; on CPU use bf16-mixed or 32-true")


def check_task_metrics(cfg: DictConfig, task: str) -> None:
    """Every metric the config names must be one this task logs (known once the data fixed the task)."""
    from mlproj import metrics

    metrics.spec_of(cfg.trainer.monitor, task, stages=("val",), key="trainer.monitor")
    for name, condition in cfg.registry.thresholds.items():
        metrics.parse_threshold(str(name), condition, task)
    if cfg.registry.primary_metric or gate_on(cfg.registry):  # the gate compares champion and challenger on it
        primary = cfg.registry.primary_metric or metrics.main_metric(task, "val")
        metrics.spec_of(primary, task, stages=("val", "test"), key="registry.primary_metric")
    if cfg.sweep.objective:
        metrics.spec_of(cfg.sweep.objective, task, stages=("val", "test"), key="sweep.objective")


UC_NAME = re.compile(r"^[^.\s/]+\.[^.\s/]+\.[^.\s/]+$")


def check_registry_uri(registry_uri: str | None, model_name: str | None) -> None:
    """Unity Catalog wants catalog.schema.model names (and signatures, which every mlproj model has)."""
    uc = bool(registry_uri) and str(registry_uri).startswith("databricks-uc")
    if uc and not (model_name and UC_NAME.match(model_name)):
        raise ConfigError(
            f"registry.model_name={model_name!r}: Unity Catalog (registry_uri={registry_uri}) needs a "
            "three-level name catalog.schema.model"
        )
