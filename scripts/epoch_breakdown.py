"""Where an mlproj epoch's seconds go: the timed window of a fit (every epoch after the first, warm-up one, up
to the end of training, so the epoch-end work is in it) and its parts.

`TimedEpochs` is a Lightning callback with a `bench_runner.Stopwatch`; `attach` wraps, on the instances of one
run, the methods each part goes through (nested calls are counted once, in the innermost part):
  training steps   SupervisedTask.training_step (forward, backward, optimizer steps of a chunk)
  validation       SupervisedTask.validation_step
  metric compute   SupervisedTask._log_epoch (torchmetrics compute, the divergence check, log_dict)
  checkpoint save  Trainer.save_checkpoint (what ModelCheckpoint calls: best.ckpt, last.ckpt)
  MLflow logging   the run logger's log_metrics (it hands metrics to a background buffer)
  progress         the progress callback's hooks (PlainProgress's lines)
  other            the rest of the window: Lightning's loops, hooks, early stopping, the batches' permutation
"""

from __future__ import annotations

import functools
import time
from typing import Any

import pytorch_lightning as pl
from bench_runner import Stopwatch

PARTS = ("training steps", "validation", "metric compute", "checkpoint save", "MLflow logging", "progress")


class TimedEpochs(pl.Callback):
    def __init__(self, sync: Any = None) -> None:
        self.watch = Stopwatch(sync)
        self.epochs = 0
        self.parts: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self._stack: list[str] = []
        self._timing = False

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch >= 1 and not self._timing:  # epoch 0 is the warm-up
            self._timing = True
            self.watch.start()
        if self._timing:
            self.epochs += 1

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.watch.stop()
        self._timing = False

    def attach(self, trainer: pl.Trainer, module: Any, logger: Any) -> None:
        self._wrap(module, "training_step", "training steps")
        self._wrap(module, "validation_step", "validation")
        self._wrap(module, "_log_epoch", "metric compute")
        self._wrap(trainer, "save_checkpoint", "checkpoint save")
        self._wrap(logger, "log_metrics", "MLflow logging")
        for callback in trainer.callbacks:
            if type(callback).__name__ in ("PlainProgress", "RichProgressBar"):
                for hook in ("on_train_epoch_start", "on_train_epoch_end", "on_train_end"):
                    self._wrap(callback, hook, "progress")

    def _wrap(self, owner: Any, name: str, part: str) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self._timing:
                return fn(*args, **kwargs)
            began = time.perf_counter()
            self._stack.append(part)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - began
                self.parts[part] += spent
                if self._stack:  # the outer part's own time excludes this one
                    self.parts[self._stack[-1]] -= spent

        setattr(owner, name, timed)

    def per_epoch_ms(self) -> dict[str, float]:
        """Milliseconds per timed epoch, by part, with the rest as "other" and the whole as "epoch"."""
        n = max(1, self.epochs)
        out = {k: 1000 * v / n for k, v in self.parts.items()}
        out["other"] = 1000 * self.watch.wall / n - sum(out.values())
        out["epoch"] = 1000 * self.watch.wall / n
        return out


def print_breakdown(per_round: list[dict[str, float]]) -> dict[str, float]:
    """The median over rounds of each part's ms per epoch, and its share of the epoch."""
    import statistics

    med = {k: statistics.median(r[k] for r in per_round) for k in per_round[0]}
    print(f"  mlproj epoch breakdown (ms per timed epoch, median of {len(per_round)} round(s)):")
    for k, v in med.items():
        share = f"{100 * v / med['epoch']:5.1f}%" if k != "epoch" and med["epoch"] else ""
        print(f"    {k:<18}{v:10.1f} {share}")
    return med
