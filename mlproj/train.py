"""The one path a run takes: plan (validate) → MLflow run → fit/test → publish → registry gate.

Everything that can be wrong with the config or the data is found by `make_plan` before the first side effect
(no experiment, run or file is created for a bad input). MLflow is imported after that.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mlproj import baselines, metrics, tags
from mlproj.config.naming import fill_default_experiment
from mlproj.console import already_finished, print_summary, quiet
from mlproj.plan import Plan, make_plan
from mlproj.results import RunResult
from mlproj.sweeps.pruning import PRUNED
from mlproj.tracking.masking import mark_secrets
from mlproj.tracking.outage import KEPT_FOLDER


def run(
    cfg: DictConfig,
    overrides: list[str] | None = None,
    output_dir: Path | None = None,
    sweep: str | None = None,
    plan: Plan | None = None,
):
    """Train, test, log and package one run; then the gate. `sweep`: its multirun; `plan`: a cv fold's (mlproj.cv)."""
    fill_default_experiment(cfg)
    plan = plan or make_plan(cfg)
    mark_secrets(cfg)
    from mlproj.tracking import outage

    remote = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if outage.is_remote(remote):
        outage.probe(remote)  # before MLflow is imported (seconds): an unreachable server fails fast

    import pytorch_lightning as pl

    from mlproj.ranks import is_rank_zero
    from mlproj.registry.interrupted import after_run as gate_after_run
    from mlproj.sweeps import runs as sweeps
    from mlproj.tracking import resume
    from mlproj.tracking import runs as tracking

    if cfg.quiet:
        quiet()
    if not is_rank_zero():
        # A DDP rank > 0 trains and evaluates its shard; the MLflow run, the model and the registry are rank
        # 0's alone (its RunLogger writes the metrics, synchronised across ranks by torchmetrics).
        return other_rank(cfg, plan, output_dir)
    client, experiment_id = tracking.connect(cfg.tracking)  # a lost server fails here, in seconds
    digest = tracking.config_digest(cfg)
    point = resume.locate(client, experiment_id, cfg.resume, digest)
    uri = tracking.tracking_uri(cfg.tracking)
    if point is not None and point.finished:
        return already_finished(client, point.run_id, plan.metric_task, uri)
    run_tags = {tags.TASK: plan.metric_task, tags.CONFIG_DIGEST: digest, **plan.info}
    run_tags[tags.METRIC_DIRECTIONS] = tracking.json_tag(metrics.declared())
    if sweep:
        run_tags.update({tags.SWEEP: sweep, **sweeps.child_tags(overrides or [])})
    all_tags = tracking.provenance_tags(overrides or [], {**cfg.tracking.tags, **run_tags})
    run_name = cfg.tracking.run_name or (sweeps.child_name(overrides or []) if sweep else None)
    work_dir = output_dir or Path(tempfile.mkdtemp(prefix="mlproj-"))
    checkpoint_dir = point.checkpoint_dir if point and point.checkpoint_dir else work_dir / "checkpoints"
    resumed = point.run_id if point else None
    try:
        with (
            resume.lock(checkpoint_dir, resumed),
            tracking.tracked_run(
                client, experiment_id, run_name, all_tags, cfg.tracking.system_metrics, resumed
            ) as active,
        ):
            run_id = active.info.run_id
            resume.record(checkpoint_dir, run_id, uri)
            # Seeded only now: MLflow draws its random run names from the same `random` module.
            pl.seed_everything(cfg.seed, workers=True, verbose=False)
            result = train(cfg, plan, client, run_id, overrides or [], work_dir, checkpoint_dir, point, sweep)
    finally:
        if output_dir is None and not (work_dir / KEPT_FOLDER).exists():
            shutil.rmtree(work_dir, ignore_errors=True)  # an in-process run without a folder leaves none
    if result.extra.get("objective") == PRUNED:
        return result
    result.experiment = client.get_experiment(experiment_id).name
    print_summary(result)
    name, target = plan.info.get(tags.DATA_NAME, "data"), plan.info.get(tags.DATA_TARGET, "target")
    result.extra["registry"] = gate_after_run(client, cfg, result, name, target, in_sweep=sweep is not None)
    return result


def train(
    cfg: DictConfig,
    plan: Plan,
    client: Any,
    run_id: str,
    overrides: list[str],
    work_dir: Path,
    checkpoint_dir: Path,
    point: Any,
    sweep: str | None,
) -> RunResult:
    """Inside the run: fit, test, then publish the results (or keep them locally if the server is lost)."""
    from mlproj.packaging.package import package_of, test_figures
    from mlproj.sweeps import runs as sweeps
    from mlproj.tracking import outage, resume
    from mlproj.tracking import runs as tracking
    from mlproj.tracking.publish import publish
    from mlproj.training.fit import fit_and_test
    from mlproj.training.trainer import RunLogger

    task, uri = plan.metric_task, tracking.tracking_uri(cfg.tracking)
    lost = outage.Outage(uri, cfg.tracking.retry_for)
    if point is None:
        tracking.log_inputs(client, run_id, cfg, overrides, plan)
        client.set_tag(run_id, tags.CHECKPOINT_DIR, str(checkpoint_dir.resolve()))
    history = tracking.epoch_history(client, run_id) if point is not None else None
    run_logger = RunLogger(client, run_id, lost, history)
    checkpoint = point.checkpoint if point is not None else None
    if point is not None:
        resume.announce(client, run_id, checkpoint)
    resume.tell_other_ranks(checkpoint_dir, checkpoint)
    results, module, recipe = fit_and_test(cfg, plan, run_logger, checkpoint_dir, checkpoint)
    if results == PRUNED:
        run_logger.flush()
        client.set_tag(run_id, tags.SWEEP_PRUNED, "true")
        print(f"mlproj: trial {cfg.sweep.trial} pruned by Optuna; run {run_id} ends FINISHED, tagged pruned")
        return RunResult(run_id, "", uri, {}, None, task, {"objective": PRUNED})
    objective = metrics.objective(cfg.sweep.objective, task)
    score = sweeps.objective_value(run_logger.history, results, objective, task)
    results.update(baselines.measure(cfg.baseline, plan, cfg.seed, run_logger))  # baseline_val_*, baseline_test_*
    package = package_of(plan, module, recipe, list(cfg.tracking.extra_pip_requirements))
    figures = test_figures(plan, package, run_logger.history) if cfg.tracking.log_plots else {}
    # All trained and measured: from here on, each step waits out a lost server (tracking.retry_for).
    model_uri = publish(
        cfg, client, run_id, lost, run_logger, results, package, figures, score, work_dir, task, sweep is not None
    )
    return RunResult(run_id, "", uri, results, model_uri, task, {"objective": score})


def other_rank(cfg: DictConfig, plan: Plan, output_dir: Path | None) -> RunResult:
    """A DDP rank > 0: the same training on its shard, from the checkpoint rank 0 resumes (if any)."""
    import pytorch_lightning as pl

    from mlproj.tracking import resume
    from mlproj.training.fit import fit_and_test
    from mlproj.training.trainer import RunLogger

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    work_dir = output_dir or Path(tempfile.mkdtemp(prefix="mlproj-"))
    try:
        checkpoint_dir, checkpoint = resume.as_rank_zero(cfg, work_dir / "checkpoints")
        results, _, _ = fit_and_test(cfg, plan, RunLogger(None, ""), checkpoint_dir, checkpoint)
    finally:
        if output_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    return RunResult("", "", "", results if isinstance(results, dict) else {}, None, plan.metric_task)
