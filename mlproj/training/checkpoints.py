"""The checkpoints a run writes per epoch, kept off the training's critical path.

best.ckpt (ModelCheckpoint on the monitored metric) is written only when the metric improves; last.ckpt, where
resume=auto continues, is written at the end of every epoch (Lightning's `save_last=True` writes it only when
best.ckpt was written, so a resumed run would repeat the epochs since the last improvement); when best.ckpt was
just written, last.ckpt is a link to it instead of a second copy. Writes happen in a background thread
(Lightning's AsyncCheckpointIO, which snapshots the tensors first): a read, a removal or a relink waits for the
writes queued before it, and the end of fit/test waits for all of them.
"""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import AsyncCheckpointIO

LAST = "last"


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """AsyncCheckpointIO whose reads and removals wait for the queued writes (the tuner saves a checkpoint and
    restores it at once; a removal must not race a write of the same file)."""

    def wait(self) -> None:
        if self._executor is not None:
            self._executor.submit(lambda: None).result()  # one worker: runs after everything queued
        if self._error:
            raise self._error

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        self.wait()
        return super().load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.wait()
        super().remove_checkpoint(*args, **kwargs)


class LastCheckpoint(ModelCheckpoint):
    """last.ckpt at the end of every epoch; a link to `best`'s file when that was written at the same step."""

    def __init__(self, dirpath: str, best: ModelCheckpoint) -> None:
        super().__init__(dirpath=dirpath, filename=LAST, monitor=None, save_top_k=1, enable_version_counter=False)
        self.best = best

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        just_written = self.best._last_global_step_saved == trainer.global_step and self.best.best_model_path
        if trainer.is_global_zero:
            wait(trainer)  # no background write of last.ckpt may land after the file is replaced
            if os.path.islink(filepath):  # a write would go through the link into best.ckpt
                os.remove(filepath)
        if not just_written:
            super()._save_checkpoint(trainer, filepath)
            return
        self._link_checkpoint(trainer, self.best.best_model_path, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


def wait(trainer: pl.Trainer) -> None:
    """Until the checkpoints queued so far are written."""
    io = getattr(trainer.strategy, "checkpoint_io", None)
    if isinstance(io, BackgroundCheckpointIO):
        io.wait()
