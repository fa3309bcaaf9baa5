"""The config: the schema (dataclasses in Hydra's ConfigStore), cross-field checks, and typed instantiation of
`_target_` nodes (families). The names most modules need are re-exported here."""

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
    TunerConfig,
    TunerMode,
    When,
    config_dir,
    unused_data_keys,
)
from mlproj.errors import ConfigError

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
    "TunerConfig",
    "TunerMode",
    "When",
    "check_config",
    "config_dir",
    "processes_per_node",
    "unused_data_keys",
]
