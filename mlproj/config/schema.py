"""The one schema: dataclasses registered in Hydra's ConfigStore.

Hydra/OmegaConf enforce key names and types while composing (a typo or a wrong type names the key);
checks.py adds what a type cannot express, families.py checks the `_target_` nodes by their class. It imports
nothing heavy so `--help` stays fast.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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
class TrainerConfig:
    """How Lightning trains: devices, epochs, early stopping, checkpoints, progress (trainer=auto|cpu|gpu|ddp)."""

    accelerator: Accelerator = Accelerator.auto  # the kind of device; auto: a GPU when there is one
    devices: Any = "auto"  # "auto", a count, or a list of device ids such as [0, 2]
    precision: str = "32-true"  # Lightning's precision, e.g. bf16-mixed on a recent GPU
    strategy: Strategy = Strategy.auto  # auto: one device, or DDP over several
    num_nodes: int = 1  # machines; each runs trainer.devices processes (torchrun or SLURM launch them)
    max_epochs: int = 100  # passes over the training data at most (early stopping may end sooner)
    min_epochs: int = 1  # passes over the training data at least, whatever early stopping says
    monitor: str = "val_loss"  # early stopping and best-checkpoint metric; direction from mlproj.metrics
    early_stopping: bool = True  # stop when trainer.monitor has not improved for trainer.patience epochs
    patience: int = 10  # epochs without improvement of trainer.monitor before early stopping
    gradient_clip_val: float | None = None  # clip gradients to this norm (None: no clipping)
    deterministic: bool = False  # deterministic algorithms only (reproducible on GPU, slower)
    fast_dev_run: bool = False  # one batch of train, val and test, nothing logged: a smoke test
    limit_train_batches: Any = 1.0  # a fraction (float) or a number of batches (int)
    limit_val_batches: Any = 1.0  # a fraction (float) or a number of batches (int)
    limit_test_batches: Any = 1.0  # a fraction (float) or a number of batches (int)
    overfit_batches: Any = 0.0  # train on this fraction (float) or number (int) of batches only, to debug
    progress_bar: ProgressMode = ProgressMode.auto  # auto: a Rich bar on a terminal, plain lines otherwise
    model_summary: bool = False  # Lightning's layer table; the model's config is in the run's params
    # Train metrics are computed and logged once per epoch as `train_{metric}` (MLflow step = epoch). With
    # N, also every N optimizer steps as `step_train_{metric}` (MLflow step = global optimizer step): the
    # value over the epoch so far. None: epoch end only (no host sync during an epoch).
    log_every_n_steps: int | None = None
    compile: bool = False  # torch.compile the network for the training steps (needs a C compiler on CPU)
    # CUDA graphs for the training steps' forward and backward (torch.compile mode="reduce-overhead"): a small
    # model's step stops being bound by kernel launches. CUDA GPUs only (refused at startup elsewhere).
    cuda_graphs: bool = False
    # Optimizer steps per Lightning training step (minibatches per item of the training iterable), to
    # amortise Lightning's per-step loop overhead. None: automatic (32; 1 when limit_train_batches,
    # overfit_batches or fast_dev_run count batches). trainer.global_step always counts optimizer steps.
    steps_per_chunk: int | None = None
    # Any other pytorch_lightning.Trainer argument can be added with +trainer.<name>=<value> (checked against
    # Trainer's signature and type hints by mlproj.config.flags); accumulate_grad_batches and
    # gradient_clip_algorithm are implemented by mlproj's task itself (manual optimization).


class TunerMode(str, enum.Enum):
    power = "power"  # doubles the batch size until it fails
    binsearch = "binsearch"  # then narrows down between the last success and the failure


@dataclass
class TunerConfig:
    """Lightning's Tuner before training; what it finds is logged on the run (tuned_lr, tuned_batch_size)."""

    lr_find: bool = False  # sweep the learning rate, train with the suggested one
    min_lr: float = 1e-6  # the smallest learning rate lr_find tries
    max_lr: float = 1.0  # the largest learning rate lr_find tries
    num_training: int = 100  # learning rates tried (training steps)
    scale_batch_size: bool = False  # the largest batch size that fits in memory
    mode: TunerMode = TunerMode.power  # power: double until it fails; binsearch: then narrow down
    max_trials: int = 25  # batch sizes tried at most
    steps_per_trial: int = 3  # training steps per batch size tried
    init_val: int = 2  # the first batch size tried


@dataclass
class TrackingConfig:
    """Where runs are recorded (MLflow) and what they record (tracking=local|server|databricks)."""

    backend: Backend = Backend.local  # local: a sqlite store; server: an MLflow server; databricks
    # None: $MLFLOW_TRACKING_URI if set, else sqlite:///<working directory>/mlflow.db
    uri: str | None = None
    registry_uri: str | None = None  # the model registry's store (None: the tracking store)
    experiment: str | None = None  # None: mlproj-<data name>, e.g. mlproj-diabetes (mlproj.config.naming)
    run_name: str | None = None  # None: MLflow's random name
    tags: dict[str, str] = field(default_factory=dict)  # extra tags on the run, e.g. ++tracking.tags.team=x
    experiment_tags: dict[str, str] = field(default_factory=dict)  # tags for a new experiment
    artifact_location: str | None = None  # for a new experiment; default: beside a local sqlite store
    log_model: bool = True  # package the trained model into the run (an MLflow pyfunc)
    # What the packaged model needs besides mlproj's own (MLflow's extra_pip_requirements): your own code's
    # dependencies, e.g. ["scikit-learn==1.7.2"]. The code itself travels in the model (code_paths).
    extra_pip_requirements: list[str] = field(default_factory=list)
    log_plots: bool = True  # learning curves and test diagnostics as PNG artifacts under plots/
    system_metrics: bool = False  # CPU, memory (and GPU) utilisation, through MLflow's system metrics
    # A tracking server lost mid-run: metrics are buffered and retried for this many seconds; after that
    # the trained model and unsent results are kept on local disk (`python -m mlproj.upload` logs them later).
    retry_for: float = 300.0
    # Config keys whose values are secret (e.g. [data.path] for a signed URL): masked wherever they appear,
    # like keys that look secret (password, token, ...) and credential environment variables.
    secret_keys: list[str] = field(default_factory=list)


class Baseline(str, enum.Enum):
    hgb = "hgb"  # scikit-learn's HistGradientBoosting, fitted beside the network on the same split and features
    linear = "linear"  # Ridge / LogisticRegression
    none = "none"


@dataclass
class CVConfig:
    folds: int = 0  # K >= 2: k-fold cross-validation (a parent run, one nested run per fold); 0: off


class Promote(str, enum.Enum):
    auto = "auto"  # champion moves when the new version beats it on registry.primary_metric
    never = "never"  # champion is left alone (challenger still moves)


class When(str, enum.Enum):
    each = "each"  # gate every run (every trial of a sweep)
    best = "best"  # in a multirun, gate only the sweep's best trial when the sweep ends


@dataclass
class RegistryConfig:
    """The gate after a run: thresholds, a new model version, the champion and challenger aliases."""

    # None: the gate runs when thresholds are set; true: also without thresholds; false: never (tagged skipped)
    enabled: bool | None = None
    model_name: str | None = None  # default: "<experiment>-<data name>"
    # metric -> condition: a bare number means "at least this good" (direction from mlproj.metrics),
    # or a string with an operator: "<60", ">=0.4".
    thresholds: dict[str, Any] = field(default_factory=dict)
    primary_metric: str | None = None  # champion comparison; default: the task's main val metric
    promote: Promote = Promote.auto  # auto: champion moves when the new version beats it; never
    when: When = When.each  # each: gate every run; best: in a multirun, only the sweep's best trial
    require_beats_baseline: bool = False  # refuse a network that loses to the baseline on primary_metric


def gate_on(registry: Any) -> bool:
    """Whether a run's registry gate runs: `registry.enabled`, or by default when thresholds are set."""
    return bool(registry.enabled) if registry.enabled is not None else bool(registry.thresholds)


def plain(value: Any) -> str:
    """An enum-typed key's value as its string (a DictConfig holds the Enum, a plain dict the string)."""
    return str(getattr(value, "value", value))


@dataclass
class SweepConfig:
    """A multirun (-m): what it optimises, whether a failing trial stops it, Optuna's storage."""

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
    # `_target_` nodes: any class of the node's family works (mlproj.config.families), so their schema is
    # the target's own signature and type hints.
    data: Any = MISSING  # a DataSource (mlproj's tables) or any LightningDataModule
    task: Any = MISSING  # a LightningModule; the built-in mlproj.tasks.supervised.SupervisedTask by default
    # The built-in task's parts (a task of your own takes what its own config names):
    model: Any = MISSING  # an nn.Module taking in_features / out_features
    optimizer: Any = MISSING  # a torch.optim.Optimizer, `_partial_: true`
    scheduler: Any = None  # an LR scheduler, `_partial_: true`
    loss: Any = None  # an nn.Module loss (None: MSE, binary cross-entropy or cross-entropy, by task)
    # Extra torchmetrics, logged as {stage}_{name}: +metrics.mape._target_=torchmetrics.MeanAbsolutePercentageError
    metrics: dict[str, Any] = field(default_factory=dict)
    # "min" or "max" for metric names whose direction mlproj cannot know (what a task of your own logs)
    metric_directions: dict[str, str] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # name -> a `_target_` node of a pytorch_lightning Callback (+callbacks=lr_monitor, or
    # +callbacks.<name>._target_=<class>), added to mlproj's own callbacks.
    callbacks: dict[str, Any] = field(default_factory=dict)
    tuner: TunerConfig = field(default_factory=TunerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # Tables with the built-in task: a scikit-learn model fitted on the same split and features, its metrics
    # logged as baseline_val_* / baseline_test_* (other data: skipped).
    baseline: Baseline = Baseline.hgb
    cv: CVConfig = field(default_factory=CVConfig)
    seed: int = 42  # seeds Python, NumPy and torch: the same seed and config train the same model on CPU
    quiet: bool = False  # no progress, no model summary, warnings only; the final summary still prints
    # None: a new run. "auto": continue the latest interrupted run of this same config from its last
    # checkpoint, into the same MLflow run (a FINISHED one is not trained again). Or a run id to continue.
    resume: str | None = None


def register_configs() -> None:
    ConfigStore.instance().store(name="mlproj_schema", node=Config)


def config_dir() -> str:
    """The packaged configs (wheel install), else the top-level conf/ of a source checkout."""
    here = Path(__file__).resolve().parents[1]  # the mlproj package
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


register_configs()
