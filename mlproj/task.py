"""The LightningModule: loss, optimisation and torchmetrics for one task family.

Metrics are torchmetrics objects updated on the device every step and computed once per epoch (Lightning
syncs them across ranks), logged as `{stage}_{metric}`. Regression metrics are reported in the target's
original units although the network learns a standardised target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from mlproj import metrics
from mlproj.metrics import REGRESSION


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite: the run ends FAILED and nothing is registered."""


class TabularTask(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        task: str,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        monitor: str = "val_loss",
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.binary = task != REGRESSION and num_classes == 2
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self.register_buffer("target_mean", torch.tensor(target_mean))
        self.register_buffer("target_std", torch.tensor(target_std))
        # ModuleDict keys cannot be "train" (an nn.Module attribute), hence the "_" prefix.
        self.stage_metrics = nn.ModuleDict(
            {f"_{s}": metrics.build_metrics(task, num_classes, s) for s in metrics.STAGES}
        )
        self.losses = nn.ModuleDict({f"_{s}": MeanMetric() for s in metrics.STAGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss_and_outputs(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, predictions for the metrics, targets for the metrics)."""
        if self.task == REGRESSION:
            out = out.squeeze(-1)
            loss = F.mse_loss(out, y)
            return loss, out * self.target_std + self.target_mean, y * self.target_std + self.target_mean
        if self.binary:
            out = out.squeeze(-1)
            return F.binary_cross_entropy_with_logits(out, y.float()), torch.sigmoid(out), y
        return F.cross_entropy(out, y), torch.softmax(out, dim=-1), y

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss, preds, target = self._loss_and_outputs(self(x), y)
        # Only device-side updates per step; values are computed and logged once per epoch.
        self.losses["_" + stage].update(loss.detach(), weight=len(y))
        self.stage_metrics["_" + stage].update(preds.detach().float(), target)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

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
        if stage == "train" and not torch.isfinite(values["train_loss"]):
            raise TrainingDiverged(
                f"train_loss is {float(values['train_loss'])} at epoch {self.current_epoch}: training diverged "
                "(lower optimizer.lr, or set trainer.gradient_clip_val)"
            )
        # The loss and the monitored metric also show in the progress bar.
        shown = {f"{stage}_loss", self.monitor}
        self.log_dict({k: v for k, v in values.items() if k not in shown}, on_step=False, on_epoch=True)
        self.log_dict({k: v for k, v in values.items() if k in shown}, on_step=False, on_epoch=True, prog_bar=True)
        self.losses["_" + stage].reset()
        self.stage_metrics["_" + stage].reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        if _is_plateau(self.scheduler_factory):
            scheduler = self.scheduler_factory(optimizer, mode=metrics.mode(self.monitor, self.task))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}


def _is_plateau(factory: Callable[..., Any]) -> bool:
    func = getattr(factory, "func", factory)
    return isinstance(func, type) and issubclass(func, torch.optim.lr_scheduler.ReduceLROnPlateau)
