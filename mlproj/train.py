"""The one path a run takes: validate → data → model → fit/test → MLflow run → packaged model.

Everything that can be wrong with the config or the data is found before the first side effect (no
experiment, run or file is created for a bad input). Heavy imports (Lightning, MLflow) come after that.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlproj import metrics
from mlproj.config.checks import check_config, check_devices, check_task_metrics
from mlproj.config.families import check_targets
from mlproj.data.prepare import PreparedData, prepare, prepare_streaming, resolve_task
from mlproj.data.sources import load_table
from mlproj.sweeps.pruning import PRUNED
from mlproj.tracking.masking import mark_secrets
from mlproj.tracking.outage import KEPT_FOLDER

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
    if cfg.data.streaming:  # Parquet larger than memory: only a bounded sample is read now
        data = prepare_streaming(cfg.data)
        check_task_metrics(cfg, data.task)
        return data
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
    mark_secrets(cfg)
    from mlproj.tracking import outage

    remote = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if outage.is_remote(remote):
        outage.probe(remote)  # before importing Lightning and MLflow (seconds): an unreachable server fails fast

    import pytorch_lightning as pl

    from mlproj.ranks import is_rank_zero
    from mlproj.registry import gate as registry
    from mlproj.sweeps import runs as sweeps
    from mlproj.tracking import resume
    from mlproj.tracking import runs as tracking

    if cfg.quiet:
        quiet()
    if not is_rank_zero():
        # A DDP rank > 0 trains and evaluates its shard; the MLflow run, the model and the registry are rank
        # 0's alone (its RunLogger writes the metrics, synchronised across ranks by torchmetrics).
        return other_rank(cfg, data, output_dir)
    client, experiment_id = tracking.connect(cfg.tracking)  # a lost server fails here, in seconds
    digest = tracking.config_digest(cfg)
    point = resume.locate(client, experiment_id, cfg.resume, digest)
    if point is not None and point.finished:
        return already_finished(client, point.run_id, data.task, tracking.tracking_uri(cfg.tracking))
    tags = tracking.provenance_tags(
        overrides or [],
        {
            **cfg.tracking.tags,
            "mlproj.task": data.task,
            "mlproj.data.name": data.table.name,
            "mlproj.data.target": str(data.table.target.name),
            "mlproj.data.source": data.table.source,
            "mlproj.config_digest": digest,
            **({"mlproj.sweep": sweep} if sweep else {}),
            **sweeps.child_tags(overrides or []),
        },
    )
    run_name = cfg.tracking.run_name or (sweeps.child_name(overrides or []) if sweep else None)
    work_dir = output_dir or Path(tempfile.mkdtemp(prefix="mlproj-"))
    checkpoint_dir = point.checkpoint_dir if point and point.checkpoint_dir else work_dir / "checkpoints"
    try:
        with (
            resume.lock(checkpoint_dir, point.run_id if point else None),
            tracking.tracked_run(
                client, experiment_id, run_name, tags, cfg.tracking.system_metrics, point.run_id if point else None
            ) as active,
        ):
            run_id = active.info.run_id
            resume.record(checkpoint_dir, run_id, tracking.tracking_uri(cfg.tracking))
            # Seeded only now: MLflow draws its random run names from the same `random` module.
            pl.seed_everything(cfg.seed, workers=True, verbose=False)
            result = train(cfg, data, client, run_id, overrides or [], work_dir, checkpoint_dir, point, sweep)
    finally:
        if output_dir is None and not (work_dir / KEPT_FOLDER).exists():
            shutil.rmtree(work_dir, ignore_errors=True)  # an in-process run without a folder leaves none
    if result.extra.get("objective") == PRUNED:
        return result
    result.experiment = client.get_experiment(experiment_id).name
    print_summary(result)
    result.extra["registry"] = registry.after_run(
        client, cfg, result, data.table.name, str(data.table.target.name), in_sweep=sweep is not None
    )
    return result


def train(
    cfg: DictConfig,
    data: PreparedData,
    client: Any,
    run_id: str,
    overrides: list[str],
    work_dir: Path,
    checkpoint_dir: Path,
    point: Any,
    sweep: str | None,
) -> RunResult:
    """Inside the run: fit, test, then publish the results (or keep them locally if the server is lost)."""
    from mlproj import plots
    from mlproj.packaging import pyfunc as packaging
    from mlproj.sweeps import runs as sweeps
    from mlproj.tracking import outage, resume
    from mlproj.tracking import runs as tracking
    from mlproj.training.trainer import RunLogger

    pre, task = data.pre, data.task
    uri = tracking.tracking_uri(cfg.tracking)
    lost = outage.Outage(uri, cfg.tracking.retry_for)
    if point is None:
        tracking.log_config(client, run_id, cfg, overrides)
        tracking.log_dataset(data.table.features, data.table.target, data.table.name, data.table.source)
        if data.table.dropped_target_rows:
            client.log_metric(run_id, "data_dropped_target_rows", data.table.dropped_target_rows)
        client.set_tag(run_id, resume.CHECKPOINT_TAG, str(checkpoint_dir.resolve()))

    history = tracking.epoch_history(client, run_id) if point is not None else None
    run_logger = RunLogger(client, run_id, lost, history)
    checkpoint = point.checkpoint if point is not None else None
    if point is not None:
        epoch = resume.resumed_epoch(checkpoint) if checkpoint else 0
        client.set_tag(run_id, resume.RESUMED_TAG, str(epoch))
        print(
            f"mlproj: resuming run {run_id} after {epoch} completed epoch(s) ({checkpoint or 'from the start'})",
            flush=True,
        )
    resume.tell_other_ranks(checkpoint_dir, checkpoint)
    results, module = fit_and_test(cfg, data, run_logger, checkpoint_dir, checkpoint)
    if results == PRUNED:
        run_logger.flush()
        client.set_tag(run_id, "mlproj.sweep.pruned", "true")
        print(f"mlproj: trial {cfg.sweep.trial} pruned by Optuna; run {run_id} ends FINISHED, tagged pruned")
        return RunResult(run_id, "", uri, {}, None, task, {"objective": PRUNED})
    objective = cfg.sweep.objective or metrics.main_metric(task, "val")
    score = sweeps.objective_value(run_logger.history, results, objective, task)
    network = module.model.cpu()

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg = {k: v for k, v in model_cfg.items() if k == "_target_" or not k.startswith("_")}
    figures: dict[str, Any] = {}
    if cfg.tracking.log_plots:
        test = data.splits["test"]
        predictions = packaging.TabularPredictor(network, pre).predict(
            test.raw, params={packaging.PROBABILITIES_PARAM: True}
        )
        figures = plots.figures(task, run_logger.history, test.raw_target, predictions, pre.labels)

    # All trained and measured: from here on, each step waits out a lost server (tracking.retry_for).
    model_uri = None
    try:
        run_logger.flush()
        if sweep and score is not None:
            lost.call(lambda: client.log_metric(run_id, sweeps.OBJECTIVE_METRIC, score), "objective")
        if cfg.tracking.log_model:
            info = lost.call(lambda: packaging.log_model(network, model_cfg, pre, data.splits["train"].raw), "model")
            model_uri = info.model_uri
            lost.call(lambda: client.set_tag(run_id, "mlproj.model_uri", model_uri), "model tag")
        if figures:
            lost.call(lambda: plots.log_plots(client, run_id, figures), "plots")
        lost.call(lambda: client.set_terminated(run_id, "FINISHED"), "status")
    except outage.TrackingLost:
        record = {
            "run_id": run_id,
            "tracking_uri": tracking.redact(uri),
            "results": results,
            "task": task,
            "model_uri": model_uri,
            "objective": [sweeps.OBJECTIVE_METRIC, score] if sweep and score is not None else None,
            "registry": bool(cfg.registry.enabled or (cfg.registry.enabled is None and cfg.registry.thresholds)),
        }
        save = None
        if cfg.tracking.log_model and model_uri is None:
            save = partial(
                packaging.save_model, network=network, model_cfg=model_cfg, pre=pre, raw=data.splits["train"].raw
            )
        pending = run_logger.pending()
        folder = outage.keep_locally(work_dir / KEPT_FOLDER, record, pending, save, figures)
        raise outage.KeptLocally(folder.resolve(), run_id) from None
    return RunResult(run_id, "", uri, results, model_uri, task, {"objective": score})


def fit_and_test(
    cfg: DictConfig, data: PreparedData, run_logger: Any, checkpoint_dir: Path, checkpoint: Path | None
) -> tuple[Any, Any]:
    """Build the module, the loaders and the trainer; fit (from `checkpoint` when resuming), then test the
    best checkpoint. Returns (test metrics, the module with the best weights), or ("pruned", module) for a
    trial Optuna stopped. Every DDP rank runs this; only rank 0's `run_logger` writes anywhere."""
    import torch

    from mlproj.config import families
    from mlproj.sweeps import pruning
    from mlproj.training.trainer import build_batches, build_task, build_trainer

    pre, task = data.pre, data.task
    io = {"in_features": pre.num_features, "out_features": pre.num_outputs}
    network = families.build(cfg.model, "model", "model", required=io)
    # `_partial_: true` nodes: the task passes the parameters, and the optimizer to the scheduler.
    scheduler = families.build(cfg.scheduler, "scheduler", "scheduler") if cfg.scheduler else None
    module = build_task(
        cfg.trainer,
        network,
        task,
        data.num_classes,
        optimizer=families.build(cfg.optimizer, "optimizer", "optimizer"),
        scheduler=scheduler,
        target_mean=pre.target_mean,
        target_std=pre.target_std,
    )
    if data.plan is not None:
        from mlproj.data import streaming

        loaders = {name: streaming.loader(data.plan, name, cfg.data, cfg.seed) for name in data.splits}
    else:
        splits = {name: (torch.from_numpy(split.x), torch.from_numpy(split.y)) for name, split in data.splits.items()}
        loaders = build_batches(cfg.trainer, splits, cfg.data.batch_size, shuffle=cfg.data.shuffle, seed=cfg.seed)
    objective = cfg.sweep.objective or metrics.main_metric(task, "val")
    trial = pruning.trial_of(cfg)
    extra = [pruning.reporter(trial, objective, task)] if trial is not None else []
    trainer = build_trainer(cfg.trainer, task, run_logger, checkpoint_dir, cfg.quiet, extra)
    if fit(trainer, module, loaders, checkpoint) == PRUNED:
        return PRUNED, module
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # Evaluated with the best checkpoint, whose weights stay loaded in `module` for packaging.
    with interrupts(trainer):
        trainer.test(module, dataloaders=loaders["test"], ckpt_path=best or None, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}, module


def other_rank(cfg: DictConfig, data: PreparedData, output_dir: Path | None) -> RunResult:
    """A DDP rank > 0: the same training on its shard, from the checkpoint rank 0 resumes (if any)."""
    import pytorch_lightning as pl

    from mlproj.tracking import resume
    from mlproj.training.trainer import RunLogger

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    work_dir = output_dir or Path(tempfile.mkdtemp(prefix="mlproj-"))
    try:
        checkpoint_dir, checkpoint = resume.as_rank_zero(cfg, work_dir / "checkpoints")
        results, _ = fit_and_test(cfg, data, RunLogger(None, ""), checkpoint_dir, checkpoint)
    finally:
        if output_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    return RunResult("", "", "", results if isinstance(results, dict) else {}, None, data.task)


def already_finished(client: Any, run_id: str, task: str, uri: str) -> RunResult:
    """resume=auto found this config's run FINISHED: report it, train nothing, register nothing again."""

    found = client.get_run(run_id)
    results = {k: v for k, v in found.data.metrics.items() if k.startswith("test_")}
    experiment = client.get_experiment(found.info.experiment_id).name
    result = RunResult(run_id, experiment, uri, results, found.data.tags.get("mlproj.model_uri"), task)
    print(f"mlproj: resume=auto: run {run_id} of this config already FINISHED; not training it again", flush=True)
    print("  (resume=null trains a new run)", flush=True)
    print_summary(result)
    return result


def fit(trainer: Any, module: Any, loaders: dict[str, Any], checkpoint: Path | None = None) -> str:
    """trainer.fit, with Optuna's pruning turned into "pruned" (and interrupts as `interrupts` says)."""
    from mlproj.sweeps import pruning

    try:
        with interrupts(trainer):
            trainer.fit(
                module, train_dataloaders=loaders["train"], val_dataloaders=loaders["val"], ckpt_path=checkpoint
            )
    except Exception as exc:
        if type(exc).__name__ == "TrialPruned":  # optuna is imported only in Optuna sweeps
            return pruning.PRUNED
        raise
    return "done"


@contextmanager
def interrupts(trainer: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM inside Lightning, turned into `Interrupted` with the signal that came, so the run
    ends KILLED and the command exits 128 + the signal (130, 143).

    Lightning turns Ctrl-C into SystemExit(1). A SIGTERM it only notes, and stops every rank together at the
    next batch (SIGTERMException), so here a SIGTERM is only noted too: raising at once would leave rank 0
    mid-step while the other ranks wait in a collective. One that came while Lightning was not listening
    (set-up, teardown) is raised when the call returns."""
    import threading

    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from mlproj.tracking import runs as tracking

    came: list[int] = []
    sigint = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: came.append(signum)) if main else None
    try:
        yield
    except SystemExit as exc:
        if isinstance(exc, SIGTERMException) or came:
            raise tracking.Interrupted(signal.SIGTERM) from exc
        if not trainer.interrupted:
            raise
        raise tracking.Interrupted(tracking.interrupt_signal(exc.__context__)) from exc
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after an interrupt
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    if came:
        raise tracking.Interrupted(signal.SIGTERM)


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
    from mlproj.tracking.runs import redact

    uri = redact(result.tracking_uri)
    ui = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"open {uri}"
    lines.append(f"  see it: {ui}")
    print("\n".join(lines), flush=True)
