"""The one schema: dataclasses registered in Hydra's ConfigStore, plus the cross-field checks.

Hydra/OmegaConf enforce key names and types while composing (a typo or a wrong type names the key);
`check_config` adds the checks a type cannot express (ranges, choices, metric names) and runs at startup,
before any file, run or experiment is created. It imports nothing heavy so `--help` stays fast.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mlproj.errors import ConfigError


class Source(str, enum.Enum):
    diabetes = "diabetes"
    breast_cancer = "breast_cancer"
    wine = "wine"
    digits = "digits"
    synthetic = "synthetic"
    csv = "csv"  # CSV or Parquet, chosen by the file's extension


class TaskKind(str, enum.Enum):
    auto = "auto"
    regression = "regression"
    classification = "classification"


class Backend(str, enum.Enum):
    local = "local"  # a sqlite store (or whatever $MLFLOW_TRACKING_URI names)
    server = "server"  # an MLflow tracking server: tracking.uri is required
    databricks = "databricks"


class Accelerator(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"
    cuda = "cuda"
    mps = "mps"


class Strategy(str, enum.Enum):
    auto = "auto"  # Lightning's choice: single device, or DDP when several are given
    ddp = "ddp"  # one process per device; under torchrun/SLURM every process is launched externally
    single_device = "single_device"


class ProgressMode(str, enum.Enum):
    auto = "auto"  # rich on a terminal, plain lines otherwise
    rich = "rich"
    plain = "plain"
    none = "none"


PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true", "64", "bf16-true", "16-true")


@dataclass
class DataConfig:
    source: Source = Source.diabetes
    path: str | None = None  # csv: a .csv / .csv.gz / .parquet file
    target: str | None = None  # the label column; bundled and synthetic sets name their own
    task: TaskKind = TaskKind.auto  # auto: inferred from the target column
    include: list[str] | None = None  # feature columns to keep (default: all but the target)
    exclude: list[str] = field(default_factory=list)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 42
    batch_size: int = 64
    shuffle: bool = True
    # Categorical columns keep their `max_categories` most frequent values; string columns that are
    # almost unique per row (IDs, free text) are dropped with a warning.
    max_categories: int = 50
    id_unique_ratio: float = 0.9
    # Parquet larger than memory: stream row groups through a DataLoader instead of loading the table;
    # the first `sample_rows` rows fit the preprocessing (mlproj/data/streaming.py).
    streaming: bool = False
    sample_rows: int = 10000
    num_workers: int = 0  # DataLoader worker processes reading the stream (row groups are split between them)
    # synthetic only
    rows: int = 1000
    features: int = 10
    classes: int = 2  # synthetic classification: number of classes
    synthetic_task: TaskKind = TaskKind.regression
    noise: float = 10.0


def unused_data_keys(data: Any) -> set[str]:
    """The `data.*` keys this source does not read: left out of the run's params, so a CSV run's params do
    not show the synthetic generator's defaults (the full config is still logged as config/config.yaml)."""
    source = str(getattr(data.source, "value", data.source))
    unused = set()
    if source != Source.synthetic.value:
        unused |= {"rows", "features", "classes", "synthetic_task", "noise"}
    elif str(getattr(data.synthetic_task, "value", data.synthetic_task)) != TaskKind.classification.value:
        unused.add("classes")
    if source != Source.csv.value:
        unused |= {"path", "streaming"}
    if not data.streaming:
        unused |= {"sample_rows", "num_workers"}
    return unused


@dataclass
class TrainerConfig:
    accelerator: Accelerator = Accelerator.auto
    devices: Any = "auto"  # "auto", a count, or a list of device ids such as [0, 2]
    precision: str = "32-true"
    strategy: Strategy = Strategy.auto
    num_nodes: int = 1  # machines; each runs trainer.devices processes (torchrun or SLURM launch them)
    max_epochs: int = 100
    min_epochs: int = 1
    monitor: str = "val_loss"  # early stopping and best-checkpoint metric; direction from mlproj.metrics
    early_stopping: bool = True
    patience: int = 10
    gradient_clip_val: float | None = None
    deterministic: bool = False
    fast_dev_run: bool = False
    limit_train_batches: Any = 1.0  # a fraction (float) or a number of batches (int)
    limit_val_batches: Any = 1.0  # a fraction (float) or a number of batches (int)
    limit_test_batches: Any = 1.0  # a fraction (float) or a number of batches (int)
    overfit_batches: Any = 0.0
    progress_bar: ProgressMode = ProgressMode.auto
    model_summary: bool = False  # Lightning's layer table; the model's config is in the run's params
    # Train metrics are computed and logged once per epoch as `train_{metric}` (MLflow step = epoch). With
    # N, also every N optimizer steps as `step_train_{metric}` (MLflow step = global optimizer step): the
    # value over the epoch so far. None: epoch end only (no host sync during an epoch).
    log_every_n_steps: int | None = None
    compile: bool = False  # torch.compile the network for the training steps (needs a C compiler on CPU)
    # Optimizer steps per Lightning training step (minibatches per item of the training iterable), to
    # amortise Lightning's per-step loop overhead. None: automatic (32; 1 when limit_train_batches,
    # overfit_batches or fast_dev_run count batches). trainer.global_step always counts optimizer steps.
    steps_per_chunk: int | None = None


@dataclass
class TrackingConfig:
    backend: Backend = Backend.local
    # None: $MLFLOW_TRACKING_URI if set, else sqlite:///<working directory>/mlflow.db
    uri: str | None = None
    registry_uri: str | None = None
    experiment: str = "mlproj"
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    experiment_tags: dict[str, str] = field(default_factory=dict)
    artifact_location: str | None = None  # for a new experiment; default: beside a local sqlite store
    log_model: bool = True
    log_plots: bool = True  # learning curves and test diagnostics as PNG artifacts under plots/
    system_metrics: bool = False  # CPU, memory (and GPU) utilisation, through MLflow's system metrics
    # A tracking server lost mid-run: metrics are buffered and retried for this many seconds; after that
    # the trained model and unsent results are kept on local disk (`python -m mlproj.upload` logs them later).
    retry_for: float = 300.0
    # Config keys whose values are secret (e.g. [data.path] for a signed URL): masked wherever they appear,
    # like keys that look secret (password, token, ...) and credential environment variables.
    secret_keys: list[str] = field(default_factory=list)


class Promote(str, enum.Enum):
    auto = "auto"  # champion moves when the new version beats it on registry.primary_metric
    never = "never"  # champion is left alone (challenger still moves)


class When(str, enum.Enum):
    each = "each"  # gate every run (every trial of a sweep)
    best = "best"  # in a multirun, gate only the sweep's best trial when the sweep ends


@dataclass
class RegistryConfig:
    # None: the gate runs when thresholds are set; true: also without thresholds; false: never (tagged skipped)
    enabled: bool | None = None
    model_name: str | None = None  # default: "<experiment>-<data name>"
    # metric -> condition: a bare number means "at least this good" (direction from mlproj.metrics),
    # or a string with an operator: "<60", ">=0.4".
    thresholds: dict[str, Any] = field(default_factory=dict)
    primary_metric: str | None = None  # champion comparison; default: the task's main test metric
    promote: Promote = Promote.auto
    when: When = When.each


@dataclass
class SweepConfig:
    # The metric a multirun optimises and ranks trials by; default: the task's main val metric
    # (val_rmse / val_accuracy). Its direction comes from mlproj.metrics.
    objective: str | None = None
    fail_fast: bool = False  # stop the sweep at the first failing trial (default: record it, go on)
    # Optuna (hparams_search=optuna): None keeps the study in memory; sqlite:///optuna.db or a PostgreSQL
    # URL makes it resumable (the same command continues it) and shareable between machines.
    storage: str | None = None
    trial: int | None = None  # set by the Optuna sweeper for each trial it launches


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    # model / optimizer / scheduler are `_target_` nodes: any importable class works, so their schema is
    # the target's signature (checked by mlproj.validation against its type hints).
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 42
    quiet: bool = False  # no progress, no model summary, warnings only; the final summary still prints
    # None: a new run. "auto": continue the latest interrupted run of this same config from its last
    # checkpoint, into the same MLflow run (a FINISHED one is not trained again). Or a run id to continue.
    resume: str | None = None


_SECTIONS = {
    "data": DataConfig,
    "trainer": TrainerConfig,
    "tracking": TrackingConfig,
    "registry": RegistryConfig,
    "sweep": SweepConfig,
}


def register_configs() -> None:
    ConfigStore.instance().store(name="mlproj_schema", node=Config)


def config_dir() -> str:
    """The packaged configs (wheel install), else the top-level conf/ of a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


def _check_known_keys(cfg: DictConfig) -> None:
    """Hydra's `+key=value` opens a typed node to add a key, so a typo taken from Hydra's own hint
    (`+trainer.max_epoch=5`) would be silently carried along: refuse keys the schema does not have."""
    nodes: dict[str, type] = {f.name: f.type for f in fields(Config)}
    for top in cfg:
        if top == "hydra":
            continue
        if top not in nodes:
            raise ConfigError(f"{top} is not a setting; top-level keys: {', '.join(nodes)}")
        schema = _SECTIONS.get(str(top))
        if schema is None or not OmegaConf.is_dict(cfg[top]):
            continue
        known = [f.name for f in fields(schema)]
        for key in cfg[top]:
            if key not in known:
                raise ConfigError(f"{top}.{key} is not a setting of {top}; keys: {', '.join(known)}")


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


def processes_per_node(devices: Any) -> int | None:
    """How many training processes trainer.devices asks for on each node (None: "auto" or -1, all there are)."""
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return len(devices)
    return devices if isinstance(devices, int) and devices >= 1 else None


def check_config(cfg: DictConfig) -> None:
    """Cross-field checks that need no data. Raises ConfigError naming the key."""
    # Hydra's own node (present in callbacks) has keys that are only filled per job: not ours to check.
    missing = {f"{top}.{k}" for top in cfg if top != "hydra" for k in _missing(cfg[top])}
    if missing:
        key = sorted(missing)[0]
        raise ConfigError(f"{key} is required{_REQUIRED_HINTS.get(key, '')}; set it with {key}=...")
    _check_known_keys(cfg)
    d, t = cfg.data, cfg.trainer
    if d.source == Source.csv and not (d.path and d.target):
        raise ConfigError("data.path and data.target are required for data=csv")
    for key in ("val_fraction", "test_fraction"):
        v = d[key]
        if not 0.0 < v < 1.0:
            raise ConfigError(f"data.{key}={v} must be between 0 and 1 (exclusive)")
    if d.val_fraction + d.test_fraction >= 0.9:
        raise ConfigError("data.val_fraction + data.test_fraction must leave at least 10% for training")
    if d.streaming and not (d.source == Source.csv and str(d.path or "").lower().endswith((".parquet", ".pq"))):
        raise ConfigError(
            f"data.streaming=true reads a Parquet file: set data=csv data.path=<file>.parquet (got {d.path})"
        )
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        v = t[key]
        if d.streaming and isinstance(v, float) and v not in (0.0, 1.0):
            raise ConfigError(
                f"trainer.{key}={v}: a stream has no length to take a fraction of; give a number of batches"
            )
    _at_least("data.sample_rows", d.sample_rows, 20)
    _at_least("data.num_workers", d.num_workers, 0)
    _at_least("data.batch_size", d.batch_size, 1)
    _at_least("data.max_categories", d.max_categories, 1)
    _at_least("data.rows", d.rows, 20)
    _at_least("data.features", d.features, 1)
    _at_least("data.classes", d.classes, 2)
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
    if t.strategy == Strategy.single_device and ((processes_per_node(devices) or 1) > 1 or t.num_nodes > 1):
        raise ConfigError(
            "trainer.strategy=single_device needs trainer.devices=1 and trainer.num_nodes=1; use trainer.strategy=ddp"
        )
    if cfg.tracking.backend == Backend.server and not cfg.tracking.uri:
        raise ConfigError("tracking.uri is required for tracking=server (e.g. http://127.0.0.1:5000)")
    if not cfg.tracking.experiment.strip():
        raise ConfigError("tracking.experiment must not be empty")
    _at_least("tracking.retry_for", cfg.tracking.retry_for, 0)
    for key in cfg.tracking.secret_keys:
        if OmegaConf.select(cfg, str(key), default=_ABSENT, throw_on_missing=False) is _ABSENT:
            raise ConfigError(f"tracking.secret_keys names {key!r}, which is not a config key")
    resume = cfg.resume
    if resume is not None and resume != "auto" and not re.fullmatch(r"[0-9a-f]{32}", str(resume)):
        shown = str(resume).lower() if str(resume) in ("True", "False") else resume  # OmegaConf's str(bool)
        raise ConfigError(f"resume={shown} is not valid; choose one of: null (a new run), auto, or a 32-hex run id")


register_configs()
