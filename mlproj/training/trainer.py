"""The Lightning Trainer: accelerator and devices, early stopping, best checkpoint, and the MLflow logger.

Also the built-in task and its batches made straight from the trainer config (`build_task`, `build_batches`),
for `scripts/benchmark.py` and the training-loop tests (a run makes them through mlproj.plan).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from mlproj import metrics
from mlproj.config.flags import TASK_FLAGS, build_callbacks, check_trainer_flags, extra_flags, task_options
from mlproj.config.schema import TrainerConfig, plain
from mlproj.data.batches import TensorBatches, split_batches
from mlproj.tasks.supervised import SupervisedTask
from mlproj.tracking.outage import MetricBuffer, Outage
from mlproj.training.checkpoints import BackgroundCheckpointIO, LastCheckpoint

log = logging.getLogger(__name__)


def _quiet_lightning() -> None:
    """Drop Lightning's advertising and notices that do not apply to mlproj's batching."""
    noise = ("💡 Tip", "was configured so 100%", "`isinstance(treespec, LeafSpec)`")

    def keep(record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in noise)

    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(keep)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # mlproj writes the run id and a lock into the checkpoint folder before Lightning sees it.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # Epoch values come from torchmetrics, whose compute() already syncs across DDP ranks.
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")


_quiet_lightning()


class RunLogger(Logger):
    """Logs Lightning's metrics into the run mlproj already started, in the background.

    Written instead of using Lightning's MLFlowLogger, which ignores the active run and MLFLOW_RUN_ID,
    marks the run terminated itself at the end of fit, and cuts params to 250 characters. mlproj owns the
    run's lifecycle (tracking.tracked_run); this only forwards metrics, with the epoch as the step (what
    Lightning's epoch-level logging sends), or the step given without an epoch (`step_train_*` series),
    through a buffer that survives a lost tracking server (outage.MetricBuffer). It also keeps the
    per-epoch series, so the end of a run (plots, the sweep objective) reads nothing back from the server.
    """

    def __init__(
        self,
        client: MlflowClient | None,  # None: a DDP rank > 0, which logs nothing
        run_id: str,
        lost: Outage | None = None,
        history: dict[str, list[tuple[int, float]]] | None = None,
    ) -> None:
        super().__init__()
        self.client, self.run_id = client, run_id
        self.buffer = MetricBuffer(client, run_id, lost or Outage("", retry_for=0))
        self.history: dict[str, list[tuple[int, float]]] = {k: list(v) for k, v in (history or {}).items()}

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run_id

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are the resolved config, logged once by tracking.log_config."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        values = dict(metrics)
        epoch = int(values.pop("epoch", step or 0))
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, epoch) for k, v in values.items()]
        for m in batch:
            if m.key.startswith(("train_", "val_")):
                self.history.setdefault(m.key, []).append((epoch, m.value))
        if batch:
            self.buffer.add(batch)

    @rank_zero_only
    def log_latest(self, values: dict[str, float], step: int) -> None:
        """Values that become the run's latest at `step` without joining the per-epoch history (the best
        checkpoint's val_* after fit: mlproj.training.fit.revalidate)."""
        import time

        now = int(time.time() * 1000)
        if values:
            self.buffer.add([Metric(k, float(v), now, step) for k, v in values.items()])

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's end of fit/test: metrics keep flowing in the background; `flush` waits for them."""

    def flush(self) -> None:
        """Wait until the server holds every metric (outage.TrackingLost if it never comes back)."""
        self.buffer.flush()

    def pending(self) -> list[Metric]:
        return self.buffer.pending()


class PlainProgress(pl.Callback):
    """One line per `every` epochs with the epoch's metrics: for logs, CI and `mlflow run` (no TTY)."""

    def __init__(self, every: int = 1) -> None:
        self.every, self.done, self.printed, self.before = max(1, every), 0, 0, 0

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.before = trainer.current_epoch  # epochs a resumed run had already done: numbering continues

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.done += 1

    # Train metrics of an epoch are computed by the module's own epoch-end hook, which Lightning calls
    # after the callbacks' hooks; so a line is printed when the next epoch starts, or when training ends.
    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.done and self.done % self.every == 0:
            self._line(trainer)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._line(trainer)

    def _line(self, trainer: pl.Trainer) -> None:
        if self.printed == self.done or not trainer.is_global_zero:  # DDP: one line per epoch, from rank 0
            return
        self.printed = self.done
        values = trainer.callback_metrics
        parts = [f"{k} {float(values[k]):.4g}" for k in sorted(values) if k.startswith(("train_", "val_"))]
        print(f"epoch {self.before + self.done}/{trainer.max_epochs}  " + "  ".join(parts), flush=True)


def progress_callbacks(mode: str, max_epochs: int, monitor: str | None = None) -> list[pl.Callback]:
    """auto: a Rich bar with live metrics on a terminal, plain lines otherwise; rich; plain; none."""
    if mode == "auto":
        mode = "rich" if sys.stderr.isatty() else "plain"
    if mode == "rich":
        from mlproj.training.progress import StepProgressBar

        return [StepProgressBar(monitor)]  # in optimizer steps, not chunks
    if mode == "plain":
        return [PlainProgress(every=max(1, -(-max_epochs // 20)))]  # about 20 lines per run at most
    return []


AUTO_STEPS_PER_CHUNK = 32  # Lightning's ~0.8 ms per training step becomes ~0.03 ms per optimizer step


def steps_per_chunk(cfg: TrainerConfig) -> int:
    """Optimizer steps per training step; 1 where Lightning counts training batches, so they stay minibatches
    (batch limits, fast_dev_run, an int `val_check_interval`, max_steps/min_steps)."""
    limit = cfg.limit_train_batches
    if cfg.fast_dev_run or cfg.overfit_batches or not (isinstance(limit, float) and limit == 1.0):
        return 1
    flags = extra_flags(cfg)
    interval = flags.get("val_check_interval")
    if isinstance(interval, int) and not isinstance(interval, bool):
        return 1
    if flags.get("max_steps", -1) not in (-1, None) or flags.get("min_steps") is not None:
        return 1
    return cfg.steps_per_chunk or AUTO_STEPS_PER_CHUNK


def build_batches(
    cfg: TrainerConfig,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
) -> dict[str, TensorBatches]:
    """Batches per split, chunked for the training step as `cfg` says (data.batches.split_batches)."""
    return split_batches(splits, batch_size, shuffle, seed, steps_per_chunk(cfg))


def build_task(
    cfg: TrainerConfig, network: torch.nn.Module, task: str, num_classes: int, **kwargs: Any
) -> SupervisedTask:
    """The LightningModule with the trainer options it implements itself (manual optimization): clipping and
    gradient accumulation."""
    return SupervisedTask(network, task, num_classes, **task_options(cfg), **kwargs)


def build_trainer(
    cfg: TrainerConfig,
    task: str,
    run_logger: Logger,
    checkpoint_dir: Path,
    quiet: bool = False,
    extra_callbacks: list[pl.Callback] | None = None,
    callbacks: Any = None,
    manual_optimization: bool = True,
) -> pl.Trainer:
    """The Trainer for a run: mlproj's checkpoints, early stopping, progress and run logger, the `callbacks`
    config node (name -> `_target_` node, see flags.build_callbacks), and every extra `+trainer.X` flag.

    `manual_optimization`: whether the module optimizes itself (mlproj's SupervisedTask does): then
    `gradient_clip_val`, `gradient_clip_algorithm` and `accumulate_grad_batches` are the module's to apply
    (build_task passes them), since Lightning refuses or ignores them there; for a module with automatic
    optimization (a user's own LightningModule) they go to pl.Trainer.
    """
    flags = extra_flags(cfg)
    check_trainer_flags(cfg)
    monitor = cfg.monitor
    mode = metrics.mode(monitor, task)
    checkpoint = ModelCheckpoint(
        dirpath=str(checkpoint_dir),
        filename="best",
        monitor=monitor,
        mode=mode,
    )
    # last.ckpt: where resume=auto continues from (the end of the last full epoch); see training.checkpoints
    last = LastCheckpoint(str(checkpoint_dir), best=checkpoint)
    # SIGTERM (a preemption), Ctrl-C or a crash: keep the state reached so far, in its own file, because
    # Lightning would otherwise write it over best.ckpt (the weights the test and the logged model use).
    interrupted = ModelCheckpoint(
        dirpath=str(checkpoint_dir), filename="interrupted", save_top_k=0, save_on_exception=True, monitor=None
    )
    progress = [] if quiet else progress_callbacks(plain(cfg.progress_bar), cfg.max_epochs, monitor)
    chosen = [checkpoint, last, interrupted, *progress, *(extra_callbacks or []), *build_callbacks(callbacks)]
    if cfg.early_stopping:
        chosen.append(EarlyStopping(monitor=monitor, mode=mode, patience=cfg.patience))
    devices = list(cfg.devices) if OmegaConf.is_list(cfg.devices) else cfg.devices
    if manual_optimization:
        flags = {k: v for k, v in flags.items() if k not in TASK_FLAGS}
    else:
        flags.setdefault("gradient_clip_val", cfg.gradient_clip_val)
    defaults: dict[str, Any] = dict(
        accelerator=plain(cfg.accelerator),
        devices=devices,
        precision=cfg.precision,
        strategy=plain(cfg.strategy),
        num_nodes=cfg.num_nodes,
        max_epochs=cfg.max_epochs,
        min_epochs=cfg.min_epochs,
        deterministic=cfg.deterministic,
        fast_dev_run=cfg.fast_dev_run,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        limit_test_batches=cfg.limit_test_batches,
        overfit_batches=cfg.overfit_batches,
        enable_progress_bar=any(isinstance(c, pl.callbacks.ProgressBar) for c in progress),
        # mlproj logs its own step-level series (SupervisedTask, trainer.log_every_n_steps); this only
        # silences Lightning's warning on short epochs.
        log_every_n_steps=1,
        enable_model_summary=cfg.model_summary and not quiet,
        logger=run_logger,
        callbacks=chosen,
        default_root_dir=str(checkpoint_dir.parent),
        num_sanity_val_steps=0,
        plugins=[BackgroundCheckpointIO()],  # checkpoint writes off the training's critical path
    )
    return pl.Trainer(**{**defaults, **flags})
