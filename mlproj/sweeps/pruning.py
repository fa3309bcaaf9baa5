"""The link between the Optuna sweeper (hydra_plugins/mlproj_optuna) and the trials it launches.

A trial knows its number from `sweep.trial`; it finds the study in this process (in-memory storage, the
basic launcher) or through the study's storage (parallel launchers), reports its val metric every epoch
and stops when the pruner says so. A pruned trial's run ends FINISHED, tagged `mlproj.sweep.pruned`.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from mlproj import metrics

log = logging.getLogger(__name__)

PRUNED = "pruned"  # what the task function returns for a pruned trial
PARENT_ATTR = "mlflow_parent_run_id"
OBJECTIVE_METRIC = "sweep_objective"  # each trial logs its score under this name
PARENT_ENV = "MLPROJ_PARENT_RUN_ID"  # the parent run of a multirun, for its trials
_studies: dict[str, Any] = {}


def objective_name(config: DictConfig) -> str:
    return str(config.sweep.objective) if config.sweep.objective else metrics.objective(None, _task(config))


def direction(config: DictConfig) -> str:
    return "maximize" if metrics.mode(objective_name(config), _task(config)) == "max" else "minimize"


def _task(config: DictConfig) -> str:
    """What names the sweep's metrics (the data's kind, or `custom` for a task of your own): from the plan,
    which also declares the run's own metric names. Made once per sweep config (it prepares the data)."""
    from mlproj.plan import make_plan

    found = _tasks.get(id(config))
    if found is None or found[0] is not config:
        found = _tasks[id(config)] = (config, make_plan(config).metric_task)
    return found[1]


_tasks: dict[int, tuple[DictConfig, str]] = {}


def share(study: Any) -> None:
    _studies[study.study_name] = study


def remember_parent(study: Any) -> None:
    """Record the sweep's parent run on the study, so a resumed study continues under it."""
    import os

    parent = os.environ.get(PARENT_ENV)
    if parent and study.user_attrs.get(PARENT_ATTR) != parent:
        study.set_user_attr(PARENT_ATTR, parent)


def trial_of(config: DictConfig) -> Any:
    """The running Optuna trial of this job, or None outside an Optuna sweep."""
    if config.sweep.trial is None:
        return None
    import optuna
    from hydra.core.hydra_config import HydraConfig

    sweeper = HydraConfig.get().sweeper
    study = _studies.get(sweeper.study_name)
    if study is None:
        study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    # Optuna addresses a running trial by its storage id; the number is what the sweeper passes on.
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(config.sweep.trial))
    return optuna.trial.Trial(study, trial_id)


def reporter(trial: Any, objective: str, task: str) -> Any:
    """A Lightning callback reporting the per-epoch val value of the objective; raises TrialPruned."""
    import optuna
    import pytorch_lightning as pl

    watched = objective if objective.startswith("val_") else "val_" + objective.partition("_")[2]
    metrics.spec_of(watched, task, stages=("val",), key="sweep.objective")

    class OptunaReport(pl.Callback):
        def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            # Not the best checkpoint's validation after fit (mlproj.training.fit): that is not an epoch.
            if trainer.sanity_checking or trainer.state.fn != "fit" or watched not in trainer.callback_metrics:
                return
            trial.report(float(trainer.callback_metrics[watched]), step=trainer.current_epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch} ({watched})")

    return OptunaReport()
