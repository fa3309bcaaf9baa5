"""The one path a run takes: validate → data → model → fit/test → MLflow run → packaged model.

Everything that can be wrong with the config or the data is found before the first side effect (no
experiment, run or file is created for a bad input). Heavy imports (Lightning, MLflow) come after that.
"""

from __future__ import annotations

import logging
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlproj import metrics
from mlproj.config import check_config
from mlproj.data.prepare import PreparedData, prepare, resolve_task
from mlproj.data.sources import load_table
from mlproj.validation import check_devices, check_targets, check_task_metrics

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    experiment: str
    tracking_uri: str
    metrics: dict[str, float]
    model_uri: str | None
    task: str
    extra: dict[str, Any] = field(default_factory=dict)


def validate(cfg: DictConfig) -> PreparedData:
    """All startup checks, in layers: config alone, `_target_` signatures, then the data and its metrics."""
    check_config(cfg)
    check_targets(cfg)
    check_devices(cfg)
    table = load_table(cfg.data)
    task = resolve_task(table, cfg.data)
    check_task_metrics(cfg, task)
    return prepare(table, task, cfg.data)


def run(
    cfg: DictConfig,
    overrides: list[str] | None = None,
    output_dir: Path | None = None,
    sweep: str | None = None,
) -> RunResult:
    """Train, test, log and package one run; then the registry gate. `sweep` names a multirun it belongs to."""
    data = validate(cfg)

    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from mlproj import packaging, plots, pruning, registry, sweeps, tracking
    from mlproj.training import RunLogger, build_batches, build_task, build_trainer

    pre, task = data.pre, data.task
    client, experiment_id = tracking.connect(cfg.tracking)
    tags = tracking.provenance_tags(
        overrides or [],
        {
            **cfg.tracking.tags,
            "mlproj.task": task,
            "mlproj.data.name": data.table.name,
            "mlproj.data.target": str(data.table.target.name),
            "mlproj.data.source": data.table.source,
            "mlproj.config_digest": tracking.config_digest(cfg),
            **({"mlproj.sweep": sweep} if sweep else {}),
            **sweeps.child_tags(overrides or []),
        },
    )
    run_name = cfg.tracking.run_name or (sweeps.child_name(overrides or []) if sweep else None)
    if cfg.quiet:
        quiet()
    with tracking.tracked_run(client, experiment_id, run_name, tags, cfg.tracking.system_metrics) as active:
        run_id = active.info.run_id
        # Seeded only now: MLflow draws its random run names from the same `random` module.
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        tracking.log_config(client, run_id, cfg, overrides or [])
        tracking.log_dataset(data.table.features, data.table.target, data.table.name, data.table.source)
        if data.table.dropped_target_rows:
            client.log_metric(run_id, "data_dropped_target_rows", data.table.dropped_target_rows)

        network = instantiate(cfg.model, in_features=pre.num_features, out_features=pre.num_outputs)
        scheduler = instantiate(cfg.scheduler) if cfg.scheduler else None
        module = build_task(
            cfg.trainer,
            network,
            task,
            data.num_classes,
            optimizer=instantiate(cfg.optimizer),
            scheduler=scheduler,
            target_mean=pre.target_mean,
            target_std=pre.target_std,
        )
        splits = {name: (torch.from_numpy(split.x), torch.from_numpy(split.y)) for name, split in data.splits.items()}
        loaders = build_batches(cfg.trainer, splits, cfg.data.batch_size, shuffle=cfg.data.shuffle, seed=cfg.seed)
        run_logger = RunLogger(client, run_id)
        work_dir = output_dir or Path(tempfile.mkdtemp(prefix="mlproj-"))
        objective = cfg.sweep.objective or metrics.main_metric(task, "val")
        trial = pruning.trial_of(cfg)
        extra = [pruning.reporter(trial, objective, task)] if trial is not None else []
        trainer = build_trainer(cfg.trainer, task, run_logger, work_dir / "checkpoints", cfg.quiet, extra)
        if fit(trainer, module, loaders) == pruning.PRUNED:
            run_logger.flush()
            client.set_tag(run_id, "mlproj.sweep.pruned", "true")
            print(f"mlproj: trial {cfg.sweep.trial} pruned by Optuna; run {run_id} ends FINISHED, tagged pruned")
            return RunResult(
                run_id, "", tracking.tracking_uri(cfg.tracking), {}, None, task, {"objective": pruning.PRUNED}
            )
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        # Evaluated with the best checkpoint, whose weights stay loaded in `module` for packaging.
        trainer.test(module, dataloaders=loaders["test"], ckpt_path=best or None, verbose=False)
        run_logger.flush()
        results = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}

        history = tracking.epoch_history(client, run_id)
        score = sweeps.objective_value(history, results, objective, task)
        if sweep and score is not None:
            client.log_metric(run_id, sweeps.OBJECTIVE_METRIC, score)

        model_uri = None
        if cfg.tracking.log_model:
            model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
            model_cfg = {k: v for k, v in model_cfg.items() if k == "_target_" or not k.startswith("_")}
            info = packaging.log_model(module.model.cpu(), model_cfg, pre, data.splits["train"].raw)
            model_uri = info.model_uri
            client.set_tag(run_id, "mlproj.model_uri", model_uri)
        if cfg.tracking.log_plots:
            test = data.splits["test"]
            predictions = packaging.TabularPredictor(module.model.cpu(), pre).predict(
                test.raw, params={packaging.PROBABILITIES_PARAM: True}
            )
            plots.log_plots(client, run_id, plots.figures(task, history, test.raw_target, predictions, pre.labels))

    experiment = client.get_experiment(experiment_id).name
    result = RunResult(run_id, experiment, tracking.tracking_uri(cfg.tracking), results, model_uri, task)
    result.extra["objective"] = score
    print_summary(result)
    result.extra["registry"] = registry.after_run(
        client, cfg, result, data.table.name, str(data.table.target.name), in_sweep=sweep is not None
    )
    return result


def fit(trainer: Any, module: Any, loaders: dict[str, Any]) -> str:
    """trainer.fit, with Ctrl-C turned back into KeyboardInterrupt and Optuna's pruning into "pruned"."""
    from mlproj import pruning, tracking

    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, train_dataloaders=loaders["train"], val_dataloaders=loaders["val"])
    except SystemExit as exc:
        if trainer.interrupted:  # Lightning turns Ctrl-C into SystemExit(1)
            raise tracking.Interrupted() from exc
        raise
    except Exception as exc:
        if type(exc).__name__ == "TrialPruned":  # optuna is imported only in Optuna sweeps
            return pruning.PRUNED
        raise
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after an interrupt
    return "done"


def quiet() -> None:
    """`quiet=true`: warnings only from the libraries; no progress bar or model summary (set below)."""
    for name in ("pytorch_lightning", "lightning_fabric", "mlflow", "mlproj"):
        logging.getLogger(name).setLevel(logging.WARNING)


def print_summary(result: RunResult) -> None:
    main = metrics.main_metric(result.task)
    lines = ["", f"mlproj: run {result.run_id} FINISHED in experiment {result.experiment!r}"]
    for name in sorted(result.metrics):
        marker = "  <- main metric" if name == main else ""
        lines.append(f"  {name:<16} {result.metrics[name]:.6g}{marker}")
    if result.model_uri:
        lines.append(f"  model: {result.model_uri}  (mlflow.pyfunc.load_model(...).predict(raw_rows))")
    from mlproj.tracking import redact

    uri = redact(result.tracking_uri)
    ui = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"open {uri}"
    lines.append(f"  see it: {ui}")
    print("\n".join(lines), flush=True)
