"""The LightningModule: loss, optimisation and torchmetrics for one task family.

Metrics are torchmetrics objects updated on the device and computed once per epoch (Lightning syncs them
across ranks), logged as `{stage}_{metric}`; with `log_every_n_steps=N` the train metrics of the epoch so
far are also logged every N optimizer steps as `step_train_{metric}`. Regression metrics are reported in the
target's original units although the network learns a standardised target.

Training uses Lightning's manual optimization: one `training_step` receives a chunk of minibatches (see
`mlproj.data.batches.TensorBatches(chunk=K)`) and makes one optimizer step per minibatch, so Lightning's
per-step bookkeeping (~0.8 ms on CPU, more than the step of a small MLP) is paid once per chunk. Backward,
optimizer steps and clipping still go through Lightning (`manual_backward`, `LightningOptimizer.step`,
`clip_gradients`), so precision plugins, DDP gradient sync and `trainer.global_step` (which counts
optimizer steps) behave as in automatic optimization.

With `accumulate_grad_batches=k` the gradients of k minibatches (each loss scaled by 1/k) make one optimizer
step, counted across chunk boundaries, with a last, shorter group at the end of an epoch: as Lightning does in
automatic optimization, where it refuses the flag for manual optimization.

Schedulers: an "epoch"-interval one (the config's `scheduler`) is stepped once per epoch; a "step"-interval
one once per training step (what Lightning's learning-rate finder installs). `training_step` returns the
mean loss of its minibatches, which the learning-rate finder records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from mlproj.data.batches import Batch, TensorBatches
from mlproj.errors import TrainingDiverged
from mlproj.metrics import REGRESSION, STAGES, build_metrics
from mlproj.metrics import mode as metric_mode
from mlproj.tasks import imbalance


class SupervisedTask(pl.LightningModule):
    """mlproj's built-in task: `model` learns (x, y) batches by `loss` (default: MSE for regression, binary
    cross-entropy on one logit, or cross-entropy), with torchmetrics per stage. mlproj builds it from the config's
    model / optimizer / scheduler / loss / metrics groups and the data; its parameters are all passed by mlproj."""

    # What mlproj passes (mlproj.plan.build_task): `task`'s own config may set none of these.
    INJECTED = frozenset(
        {
            "model",
            "task",
            "num_classes",
            "optimizer",
            "scheduler",
            "loss",
            "metrics",
            "monitor",
            "target_mean",
            "target_std",
            "gradient_clip_val",
            "log_every_n_steps",
            "compile",
            "class_counts",
        }
    )

    def __init__(
        self,
        model: nn.Module,
        task: str,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss: nn.Module | None = None,
        metrics: dict[str, Callable[[], Any]] | None = None,
        monitor: str = "val_loss",
        target_mean: float = 0.0,
        target_std: float = 1.0,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        accumulate_grad_batches: int = 1,
        log_every_n_steps: int | None = None,
        compile: bool = False,
        class_weight: str | list[float] | None = "auto",
        threshold: str | float = "auto",
        class_counts: list[int] | None = None,
    ) -> None:
        """`class_weight`: auto | balanced | none | one weight per class (the built-in loss only); `threshold`:
        auto | P(positive) for binary tasks; `class_counts`: training rows per class (mlproj passes them). See
        mlproj.tasks.imbalance for the rules."""
        super().__init__()
        # Manual optimization: a training step makes several optimizer steps (see the module docstring).
        self.automatic_optimization = False
        self.model = model
        # Compiled for the training steps only (validation and test run eagerly, no recompilation for
        # eval mode). A compiled function rather than torch.compile(model), an OptimizedModule that would
        # become a submodule and put "_orig_mod." keys in checkpoints; the packaged model is `self.model`.
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = (
            torch.compile(model.forward) if compile else None
        )
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.accumulate_grad_batches = max(1, int(accumulate_grad_batches))
        self._accumulated = 0  # minibatches whose gradients wait for the next optimizer step
        # The finder of Lightning's Tuner running ("lr_find", "scale_batch_size"), set by
        # mlproj.training.tuning: its sweeps diverge on purpose.
        self.tuning = ""
        self.log_every_n_steps = log_every_n_steps
        self.task = task
        self.num_classes = num_classes
        # Binary classification learns one logit, unless a loss of the config's wants one per class.
        self.binary = task != REGRESSION and num_classes == 2 and one_logit(loss)
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        extra_metrics = metrics
        self.monitor = monitor
        imbalance.check(class_weight, threshold, num_classes if task != REGRESSION else None)
        self.class_counts = list(class_counts) if class_counts else None
        weights = imbalance.class_weights(class_weight, self.class_counts) if task != REGRESSION else None
        # None: an unweighted loss. A loss of the config's is used as given (its own weights, if any).
        self.register_buffer("class_weights", torch.tensor(weights) if weights else None, persistent=False)
        self.threshold = threshold
        self.decision_threshold: float | None = None if threshold == "auto" else float(threshold)
        # Test rows per class predicted / present: a class present but never predicted is test_missed_classes.
        self.register_buffer("_predicted", torch.zeros(max(num_classes, 2), dtype=torch.long), persistent=False)
        self.register_buffer("_present", torch.zeros(max(num_classes, 2), dtype=torch.long), persistent=False)
        self.register_buffer("target_mean", torch.tensor(target_mean))
        self.register_buffer("target_std", torch.tensor(target_std))
        # ModuleDict keys cannot be "train" (an nn.Module attribute), hence the "_" prefix.
        self.stage_metrics = nn.ModuleDict(
            {f"_{s}": build_metrics(task, num_classes, s, extra_metrics) for s in STAGES}
        )
        self.losses = nn.ModuleDict({f"_{s}": MeanMetric() for s in STAGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, the network's output as the metrics take it: squeezed for one-output tasks)."""
        if self.task == REGRESSION or self.binary:
            out = out.squeeze(-1)
            target = y if self.task == REGRESSION else y.float()
            if self.loss_fn is not None:
                return self.loss_fn(out, target), out
            if self.task == REGRESSION:
                return F.mse_loss(out, target), out
            w = self.class_weights
            pos_weight = None if w is None else (w[1] / w[0])
            # pos_weight scales the positive rows, w[0] the rest (balanced weights average 1 over the training rows)
            scale = 1.0 if w is None else w[0]
            return scale * F.binary_cross_entropy_with_logits(out, target, pos_weight=pos_weight), out
        if self.loss_fn is not None:
            return self.loss_fn(out, y), out
        return F.cross_entropy(out, y, weight=self.class_weights), out

    def _for_metrics(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions, targets) for the metrics: original units for regression, probabilities otherwise."""
        out = out.detach().float()
        if self.task == REGRESSION:
            return out * self.target_std + self.target_mean, y * self.target_std + self.target_mean
        if self.binary:
            return torch.sigmoid(out), y
        probs = torch.softmax(out, dim=-1)
        # Two classes learnt as two logits (a loss of the config's): binary metrics take P(class 1).
        return (probs[:, 1], y) if self.num_classes == 2 else (probs, y)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        x, y = batch
        loss, out = self._loss(self(x), y)
        # Only device-side updates per step; values are computed and logged once per epoch.
        self.losses["_" + stage].update(loss.detach(), weight=len(y))
        predictions, targets = self._for_metrics(out, y)
        self.stage_metrics["_" + stage].update(predictions, targets)
        if stage == "test" and self.task != REGRESSION:
            self._count_classes(predictions, targets)
        return loss

    def _count_classes(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        if predictions.dim() == 1:  # P(class 1), cut at the decision threshold
            cut = 0.5 if self.decision_threshold is None else self.decision_threshold
            labels = (predictions > cut).long()
        else:
            labels = predictions.argmax(dim=-1)
        size = len(self._predicted)
        self._predicted += torch.bincount(labels, minlength=size)[:size]
        self._present += torch.bincount(targets.long(), minlength=size)[:size]

    def training_step(self, batch: Batch | list[Batch], batch_idx: int) -> torch.Tensor:
        """One optimizer step per minibatch of the chunk (per `accumulate_grad_batches` minibatches); metric
        updates batched per chunk, on the device. Returns the chunk's mean loss (detached)."""
        optimizer, forward = self.optimizers(), self._compiled or self.model
        pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        # A chunk is a list of (x, y) pairs; a single minibatch is (x, y), or [x, y] from a DataLoader's collate.
        chunk = batch if isinstance(batch, list) and not isinstance(batch[0], torch.Tensor) else [batch]
        if self.tuning == "lr_find" and len(chunk) > 1:
            raise RuntimeError(
                "the learning-rate finder needs one minibatch per training step: the datamodule must expose "
                "its chunking as `chunk` (mlproj.training.tuning sets it to 1)"
            )
        k = self.accumulate_grad_batches
        last_of_epoch = k > 1 and self._epoch_ends_here()
        for i, (x, y) in enumerate(chunk):
            loss, out = self._loss(forward(x), y)
            if k == 1:
                optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss / k if k > 1 else loss)
            pending.append((loss.detach(), out.detach(), y))
            self._accumulated += 1
            if self._accumulated < k and not (last_of_epoch and i == len(chunk) - 1):
                continue
            optimizer.step()  # clipping happens in on_before_optimizer_step, after AMP unscaling
            if k > 1:
                optimizer.zero_grad(set_to_none=True)
            self._accumulated = 0
            if self.log_every_n_steps and self.global_step % self.log_every_n_steps == 0:
                self._update_train_metrics(pending)
                self._log_steps()
        losses = [p[0] for p in pending]
        self._update_train_metrics(pending)
        self._step_scheduler("step")
        return torch.stack(losses).mean() if losses else loss.detach()

    def _epoch_ends_here(self) -> bool:
        """Whether this training step holds the epoch's last minibatch (then a partial accumulation steps)."""
        trainer = self.trainer
        if trainer.is_last_batch:
            return True
        progress = trainer.fit_loop.epoch_loop.batch_progress
        return progress.current.ready >= trainer.num_training_batches

    def on_train_start(self) -> None:
        # The tables move to the training device once, so a step slices device memory (no per-step copy).
        _to_device(self.trainer.train_dataloader, self.device)
        self._accumulated = 0
        self.optimizers().zero_grad(set_to_none=True)

    def _update_train_metrics(self, pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        """One update for a chunk's minibatches: an update costs ~0.1 ms on CPU, almost whatever its size."""
        if not pending:
            return
        losses, outs, targets = zip(*pending, strict=True)
        # Weights filled on the device: torch.tensor(list, device=cuda) would be a blocking copy (a host sync).
        sizes = [len(t) for t in targets]
        weights = torch.full((len(sizes),), float(sizes[0]), device=losses[0].device)
        for i, n in enumerate(sizes):
            if n != sizes[0]:  # only a short last minibatch
                weights[i] = n
        self.losses["_train"].update(torch.stack(losses), weight=weights)
        self.stage_metrics["_train"].update(*self._for_metrics(torch.cat(outs), torch.cat(targets)))
        pending.clear()

    def _log_steps(self) -> None:
        """The epoch-so-far train metrics at step = global step; the only host sync, every N steps."""
        values = {"step_train_loss": self.losses["_train"].compute()}
        values.update({"step_" + k: v for k, v in self.stage_metrics["_train"].compute().items()})
        values = {k: float(v) for k, v in values.items()}
        for logger in self.loggers:
            logger.log_metrics(values, step=self.global_step)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Where Lightning clips in automatic optimization: gradients are unscaled (16-mixed) by now.
        if self.gradient_clip_val:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.gradient_clip_val,
                gradient_clip_algorithm=self.gradient_clip_algorithm,
            )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        if self.trainer.sanity_checking:
            self.losses["_" + stage].reset()
            self.stage_metrics["_" + stage].reset()
            return
        values = {
            f"{stage}_loss": self.losses["_" + stage].compute(),
            **self.stage_metrics["_" + stage].compute(),
        }
        # Checked once per epoch, not per step: a per-step check would synchronise the GPU every batch.
        if stage == "train" and not self.tuning and not torch.isfinite(values["train_loss"]):
            raise TrainingDiverged(
                f"train_loss is {float(values['train_loss'])} at epoch {self.current_epoch}: training diverged "
                "(lower optimizer.lr, or set trainer.gradient_clip_val); the run was marked FAILED"
            )
        # The loss and the monitored metric also show in the progress bar.
        shown = {f"{stage}_loss", self.monitor}
        self.log_dict({k: v for k, v in values.items() if k not in shown}, on_step=False, on_epoch=True)
        self.log_dict({k: v for k, v in values.items() if k in shown}, on_step=False, on_epoch=True, prog_bar=True)
        self.losses["_" + stage].reset()
        self.stage_metrics["_" + stage].reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        self._step_scheduler("epoch")

    def _step_scheduler(self, interval: str) -> None:
        """The schedulers of this interval: "epoch" after validation, "step" after each training step
        (manual optimization leaves schedulers to the module)."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval:
                continue
            scheduler = config.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.trainer.callback_metrics.get(config.monitor or self.monitor)
                if value is not None:  # None: no validation this epoch
                    scheduler.step(value)
            else:
                scheduler.step()

    def on_train_epoch_start(self) -> None:
        # The epoch's permutation follows the trainer's epoch, so a resumed run shuffles as an uninterrupted one.
        loader = self.trainer.train_dataloader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(self.current_epoch)

    def on_validation_start(self) -> None:
        _to_device(self.trainer.val_dataloaders, self.device)

    def on_test_start(self) -> None:
        _to_device(self.trainer.test_dataloaders, self.device)
        self._predicted.zero_()
        self._present.zero_()
        if self.task != REGRESSION and self.num_classes == 2 and self.threshold == "auto":
            self.decision_threshold = self._choose_threshold()
        if self.decision_threshold is not None:  # test metrics measure the predictions the model will make
            for metric in self.stage_metrics["_test"].values():
                if hasattr(metric, "threshold") and isinstance(metric.threshold, float):
                    metric.threshold = self.decision_threshold

    def _choose_threshold(self) -> float | None:
        """The binary threshold, chosen on the validation split with the weights being tested (the best
        checkpoint's): mlproj.tasks.imbalance.choose_threshold."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return None
        loader = datamodule.val_dataloader()
        _to_device(loader, self.device)
        probs, targets = [], []
        with torch.inference_mode():
            for batch in loader:
                for x, y in batch if isinstance(batch, list) and not isinstance(batch[0], torch.Tensor) else [batch]:
                    out = self(x.to(self.device))
                    p, t = self._for_metrics(out.squeeze(-1) if self.binary else out, y)
                    probs.append(p.float().cpu())
                    targets.append(t.cpu())
        found = None
        if probs:
            p, t = torch.cat(probs).numpy(), torch.cat(targets).numpy()
            found = imbalance.choose_threshold(p, t, self.monitor, self.class_counts)
        # DDP: each rank holds a shard of the validation split; all use rank 0's choice, which is packaged.
        return self.trainer.strategy.broadcast(found, src=0)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
        if self.task != REGRESSION:
            predicted = self.trainer.strategy.reduce(self._predicted, reduce_op="sum")
            present = self.trainer.strategy.reduce(self._present, reduce_op="sum")
            missed = ((present > 0) & (predicted == 0)).sum().float()
            self.log("test_missed_classes", missed, on_step=False, on_epoch=True, sync_dist=False)
            if self.decision_threshold is not None:
                self.log("decision_threshold", float(self.decision_threshold), on_step=False, on_epoch=True)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        if _is_plateau(self.scheduler_factory):
            scheduler = self.scheduler_factory(optimizer, mode=metric_mode(self.monitor, self.task))
        else:
            scheduler = self.scheduler_factory(optimizer)
        # Stepped by _step_scheduler (manual optimization), the plateau one with self.monitor.
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def _to_device(loaders: Any, device: torch.device) -> None:
    for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
        if isinstance(loader, TensorBatches):
            loader.to(device)


def _is_plateau(factory: Callable[..., Any]) -> bool:
    func = getattr(factory, "func", factory)
    return isinstance(func, type) and issubclass(func, torch.optim.lr_scheduler.ReduceLROnPlateau)


def one_logit(loss: nn.Module | None) -> bool:
    """Binary classification on one logit (mlproj's default, and BCEWithLogitsLoss); any other loss a config
    names for two classes gets one logit per class, as for more classes."""
    return loss is None or isinstance(loss, nn.BCEWithLogitsLoss)


def outputs(task: str, num_classes: int, loss: nn.Module | None, targets: int = 1) -> int:
    """out_features of the network for this task and loss; `targets`: regression values per example (a forecast's
    horizon)."""
    if task == REGRESSION:
        return targets
    if num_classes == 2 and one_logit(loss):
        return 1
    return num_classes
