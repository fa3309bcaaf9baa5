"""Fit and test one run's module: the trainer with its callbacks, Optuna's pruning, the tuner, then the test of the
best checkpoint. Every DDP rank runs this; only rank 0's run logger writes anywhere."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mlproj import metrics
from mlproj.plan import Plan, build_task
from mlproj.sweeps import pruning
from mlproj.training.signals import interrupts

PRUNED = pruning.PRUNED


def datamodule(cfg: DictConfig, plan: Plan) -> Any:
    """What trainer.fit gets: the user's LightningDataModule, or mlproj's tables wrapped as one."""
    if plan.prepared is None:
        return plan.source
    from mlproj.data.module import TablesModule
    from mlproj.training.trainer import steps_per_chunk

    # Chunks of minibatches are the built-in task's (manual optimization); a task of yours gets (x, y) batches.
    chunk = steps_per_chunk(cfg.trainer) if plan.builtin else 1
    return TablesModule(plan.source, plan.prepared, cfg.seed, chunk)


def fit_and_test(
    cfg: DictConfig, plan: Plan, run_logger: Any, checkpoint_dir: Path, checkpoint: Path | None
) -> tuple[Any, Any, dict[str, Any]]:
    """Build the module and the trainer; fit (from `checkpoint` when resuming), then test the best checkpoint.
    Returns (test metrics, the module with the best weights, how to rebuild its network), or ("pruned", ...)
    for a trial Optuna stopped."""
    from mlproj.training.names import check_logged_names
    from mlproj.training.trainer import build_trainer
    from mlproj.training.tuning import tune

    module, recipe = build_task(cfg, plan)
    data = datamodule(cfg, plan)
    objective = metrics.objective(cfg.sweep.objective, plan.metric_task)
    trial = pruning.trial_of(cfg)
    extra = [check_logged_names(cfg)]
    if trial is not None:
        extra.append(pruning.reporter(trial, objective, plan.metric_task))
    manual = not module.automatic_optimization
    trainer = build_trainer(
        cfg.trainer, plan.metric_task, run_logger, checkpoint_dir, cfg.quiet, extra, cfg.callbacks, manual
    )
    if checkpoint is None:  # a resumed run keeps what its first start found
        tuned = tune(cfg.tuner, trainer, module, data)
        if tuned:
            run_logger.log_metrics(tuned, step=0)  # tuned_lr / tuned_batch_size on the run
    if fit(trainer, module, data, checkpoint) == PRUNED:
        return PRUNED, module, recipe
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # Evaluated with the best checkpoint, whose weights stay loaded in `module` for packaging. Validated again
    # first when it is not the last epoch's: the run's val_* (what mlproj.register and the champion rank by) then
    # describe the packaged model, not the last epoch.
    with interrupts(trainer):
        if best and Path(best).name != "last.ckpt" and not _last_is_best(trainer):
            revalidate(trainer, module, data, best, run_logger)
        trainer.test(module, datamodule=data, ckpt_path=best or None, verbose=False)
    results = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test")}
    return results, module, recipe


def revalidate(trainer: Any, module: Any, data: Any, best: str, run_logger: Any) -> None:
    """The best checkpoint's val_* sent as the run's latest values, at the last epoch's step: not through
    Lightning's logging, which would add an epoch after the last one to every curve and to the history."""
    loggers, trainer.loggers = trainer.loggers, []
    try:
        found = trainer.validate(module, datamodule=data, ckpt_path=best, verbose=False)
    finally:
        trainer.loggers = loggers
    values = {k: float(v) for k, v in (found[0] if found else {}).items() if k.startswith("val_")}
    run_logger.log_latest(values, step=max(trainer.current_epoch - 1, 0))


def _last_is_best(trainer: Any) -> bool:
    """The last epoch's monitored value is the best checkpoint's (nothing to validate again)."""
    callback = trainer.checkpoint_callback
    last = trainer.callback_metrics.get(callback.monitor) if callback.monitor else None
    return (
        last is not None and callback.best_model_score is not None and float(last) == float(callback.best_model_score)
    )


def fit(trainer: Any, module: Any, data: Any, checkpoint: Path | None = None) -> str:
    """trainer.fit, with Optuna's pruning turned into "pruned" (and interrupts as `interrupts` says)."""
    try:
        with interrupts(trainer):
            trainer.fit(module, datamodule=data, ckpt_path=checkpoint)
    except Exception as exc:
        # Optuna is imported only in Optuna sweeps (the pruning callback raises its TrialPruned): not here.
        optuna = sys.modules.get("optuna")
        if optuna is not None and isinstance(exc, optuna.TrialPruned):
            return PRUNED
        raise
    return "done"
