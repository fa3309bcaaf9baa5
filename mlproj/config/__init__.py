"""The config: the schema (dataclasses in Hydra's ConfigStore), cross-field checks, and typed instantiation of
`_target_` nodes (families). The names most modules need are re-exported here.

The re-exports are resolved lazily (PEP 562): the packaged model's loader imports `mlproj.config.families`,
which must not pull in Hydra (a serving environment may not have it)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlproj.errors import ConfigError

if TYPE_CHECKING:
    from mlproj.config.checks import check_config, processes_per_node
    from mlproj.config.schema import (
        PRECISIONS,
        Accelerator,
        Backend,
        Config,
        DataConfig,
        ProgressMode,
        Promote,
        RegistryConfig,
        Source,
        Strategy,
        SweepConfig,
        TaskKind,
        TrackingConfig,
        TrainerConfig,
        When,
        config_dir,
        unused_data_keys,
    )

_FROM_CHECKS = ("check_config", "processes_per_node")

__all__ = [
    "PRECISIONS",
    "Accelerator",
    "Backend",
    "Config",
    "ConfigError",
    "DataConfig",
    "ProgressMode",
    "Promote",
    "RegistryConfig",
    "Source",
    "Strategy",
    "SweepConfig",
    "TaskKind",
    "TrackingConfig",
    "TrainerConfig",
    "When",
    "check_config",
    "config_dir",
    "processes_per_node",
    "unused_data_keys",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("mlproj.config.checks" if name in _FROM_CHECKS else "mlproj.config.schema")
    return getattr(module, name)
