"""The Rich progress bar in optimizer steps: mlproj's training step is a chunk of minibatches (one optimizer
step each, mlproj.data.batches), so Lightning's own bar would count chunks (`1/1`, `0.00it/s`).

It counts the minibatches of the epoch, shows their real rate (steps over the epoch's time so far), numbers
epochs from 1 (`Epoch 1/3`), shows the monitored metric, and leaves out `v_num` (the logger's version).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.callbacks.progress.rich_progress import ProcessingSpeedColumn
from rich.progress import ProgressColumn
from rich.text import Text


class StepRateColumn(ProgressColumn):
    """Steps per second over the task so far (Rich's own speed needs two updates; an epoch may be one chunk)."""

    def __init__(self, style: Any) -> None:
        self.style = style
        super().__init__()

    def render(self, task: Any) -> Text:
        elapsed = task.elapsed or 0.0
        rate = f"{task.completed / elapsed:,.0f}" if elapsed > 0 and task.completed else "-"
        return Text(f"{rate} steps/s", style=self.style)


class StepProgressBar(RichProgressBar):
    def __init__(self, monitor: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.monitor, self.steps = monitor, 0

    @property
    def total_train_batches(self) -> int | float:
        loader = self.trainer.train_dataloader
        if getattr(loader, "chunk", 1) > 1 and hasattr(loader, "num_batches"):
            return loader.num_batches()  # chunked: batch limits are off (trainer.steps_per_chunk), every step runs
        return super().total_train_batches

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.steps = 0
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.steps += minibatches(batch)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, self.steps - 1)  # the bar is at self.steps

    def _get_train_description(self, current_epoch: int) -> str:
        last = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{last}" if last not in (None, -1) else "")
        return f"{text:{len(self.validation_description)}}"  # as wide as "Validation": no flicker

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            items[self.monitor] = float(value)
        return items

    def configure_columns(self, trainer: pl.Trainer) -> list:
        return [
            StepRateColumn(self.theme.processing_speed) if isinstance(c, ProcessingSpeedColumn) else c
            for c in super().configure_columns(trainer)
        ]


def minibatches(batch: Any) -> int:
    """Optimizer steps in one training batch: a chunk is a list of (x, y) pairs; anything else is one."""
    if isinstance(batch, list) and batch and not isinstance(batch[0], torch.Tensor):
        return len(batch)
    return 1
