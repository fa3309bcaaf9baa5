"""The metric names a run's config relies on, checked against what the task really logs.

The built-in task's names are known at startup (mlproj.metrics). A task of your own logs what it logs: the names
the config gives (trainer.monitor, sweep.objective) are checked at the end of the first validation epoch, with
one line listing what it did log."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from mlproj.errors import ConfigError


class LoggedNamesCheck(pl.Callback):
    def __init__(self, names: dict[str, str]) -> None:
        self.names, self.done = names, False  # config key -> the val metric it names

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.done or trainer.sanity_checking:
            return
        self.done = True
        logged = sorted(k for k in trainer.callback_metrics if not k.startswith("step_"))
        for key, name in self.names.items():
            if name not in trainer.callback_metrics:
                raise ConfigError(
                    f"{key}={name!r} is not logged by {type(module).__name__}; it logged: {', '.join(logged) or 'nothing'}"
                )


def check_logged_names(cfg: DictConfig) -> Any:
    """A callback that checks, once, that the validation metrics the config names are logged."""
    names = {"trainer.monitor": str(cfg.trainer.monitor)}
    objective = cfg.sweep.objective
    if objective and str(objective).startswith("val"):
        names["sweep.objective"] = str(objective)
    return LoggedNamesCheck(names)
