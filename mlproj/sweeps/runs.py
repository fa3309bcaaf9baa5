"""A Hydra multirun as one thing in MLflow: a parent run, one nested child run per job, a summary.

The parent is opened before any job starts (which also creates the store's schema and the experiment once,
avoiding the race of parallel first use) and its id handed to the jobs through the environment, so jobs in
other processes (joblib launcher) nest under it too. Under `mlflow run`, the run MLflow created is the
parent. When the sweep ends the parent gets a table of every trial, a plot of the objective, and the best
trial's metrics; it ends FINISHED, or FAILED when every trial failed.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mlproj import metrics, tags
from mlproj.sweeps import study
from mlproj.sweeps.pruning import OBJECTIVE_METRIC, PARENT_ENV

log = logging.getLogger(__name__)

SWEPT_ENV = "MLPROJ_SWEPT_KEYS"
_open_parents: set[str] = set()
_exit_status = {"value": "KILLED"}  # what an unfinished parent ends as if the process exits early
_shared = {"value": False}  # the parent is shared by the workers of one Optuna study


def note_failure() -> None:
    """An error happened (not Ctrl-C): should the process exit early, an unfinished parent ends FAILED."""
    _exit_status["value"] = "FAILED"


def start_parent(cfg: DictConfig, sweep_dir: str, sweep_overrides: list[str]) -> str:
    from mlproj.tracking import runs as tracking
    from mlproj.tracking.masking import redact

    client, experiment_id = tracking.connect(cfg.tracking)
    parent_tags = {
        tags.SWEEP: sweep_dir,
        tags.SWEEP_ROLE: "parent",
        # masked: `sweep.storage=postgresql://user:password@...` is a sweep override like any other
        tags.SWEEP_OVERRIDES: json.dumps([redact(o) for o in sweep_overrides])[: tracking.TAG_VALUE_LIMIT],
        **tracking.provenance_tags(sweep_overrides, dict(cfg.tracking.tags)),
    }
    launched = os.environ.pop("MLFLOW_RUN_ID", None)  # `mlflow run`: its run is the parent, not a trial
    name = "sweep " + " ".join(Path(sweep_dir).parts[-2:])

    def create() -> str:
        return client.create_run(experiment_id, run_name=name, tags=parent_tags).info.run_id

    # An Optuna study on storage may be worked by several commands at once (and a resumed one keeps its
    # parent): they share one parent, found or created under a lock (mlproj.sweeps.study).
    shared = not launched and study.shared_storage(cfg) is not None
    parent = launched or (study.join(cfg, client, create) if shared else create())
    if launched or shared:
        client.update_run(parent, status="RUNNING")
        for key, value in parent_tags.items():
            client.set_tag(parent, key, value)
    _shared["value"] = shared
    os.environ[PARENT_ENV] = parent
    searched = list(cfg.hydra.get("sweeper", {}).get("params", {}) or {})  # the Optuna sweeper's space
    os.environ[SWEPT_ENV] = json.dumps(swept_keys(sweep_overrides) + searched)
    _open_parents.add(parent)
    atexit.register(_close_abandoned, client, parent, cfg)
    print(f"mlproj: sweep parent run {parent} in experiment {client.get_experiment(experiment_id).name!r}")
    return parent


def _close_abandoned(client: Any, parent: str, cfg: DictConfig) -> None:
    """The process is exiting with the sweep unfinished (Ctrl-C, an error): never leave it RUNNING, unless
    other workers of its study are still on it (the last of them ends it)."""
    if parent in _open_parents:
        _open_parents.discard(parent)
        try:
            if _shared["value"] and study.leave(cfg):
                print(f"mlproj: sweep {parent} left RUNNING: other workers are still on it")
                return
            client.set_terminated(parent, _exit_status["value"])
        except Exception as exc:  # exiting anyway; say so and go
            log.warning("could not close sweep run %s: %s", parent, exc)


def child_tags(overrides: list[str]) -> dict[str, str]:
    parent = os.environ.get(PARENT_ENV)
    return {tags.PARENT: parent, tags.SWEEP_ROLE: "trial"} if parent else {}


def check_devices(cfg: DictConfig) -> None:
    """Refuse multi-device training inside a multirun: Lightning re-launches the script once per rank,
    and inside Hydra's multirun every rank would start the whole sweep again."""
    from mlproj.errors import ConfigError

    devices = cfg.trainer.devices
    many = (isinstance(devices, int) and (devices > 1 or devices == -1)) or (
        not isinstance(devices, int | str) and len(devices) > 1
    )
    if int(cfg.trainer.get("num_nodes", 1)) > 1:
        raise ConfigError(
            f"trainer.num_nodes={cfg.trainer.num_nodes} inside a multirun (-m) is not supported; train multi-node without -m"
        )
    if many:
        raise ConfigError(
            f"trainer.devices={devices} inside a multirun (-m) is not supported: Lightning would start the "
            "sweep again on every rank. Sweep with one device per job (trainer.devices=1, and "
            "hydra/launcher=joblib to run jobs in parallel, one GPU each), or train multi-device without -m."
        )


def device_for_job(job_num: int, gpus: int, devices: Any, accelerator: str) -> list[int] | None:
    """Parallel jobs on a machine with several GPUs: job n gets GPU n mod count (None: leave as is)."""
    if gpus < 2 or accelerator not in ("auto", "gpu", "cuda") or devices not in ("auto", 1):
        return None
    return [job_num % gpus]


def swept_keys(sweep_overrides: list[str]) -> list[str]:
    """The keys a multirun varies (`model=linear,mlp`, `optimizer.lr=interval(...)`), via Hydra's parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(sweep_overrides)
    return [o.get_key_element() for o in parsed if o.is_sweep_override()]


def child_name(overrides: list[str]) -> str:
    """A trial is named after what its sweep varies: `model=mlp,optimizer.lr=0.01` (Optuna: `trial 3 ...`)."""
    keys = _swept_env()
    trial = [o.split("=", 1)[1] for o in overrides if o.startswith("++sweep.trial=")]
    varied = [o for o in overrides if o.split("=", 1)[0] in keys] or [o for o in overrides if "sweep.trial" not in o]
    name = ",".join(varied) or "defaults"
    return (f"trial {trial[0]} {name}" if trial else name)[:250]


def objective_value(
    history: dict[str, list[tuple[int, float]]], results: dict[str, float], name: str, task: str
) -> float | None:
    """The trial's score: a test metric as measured, a val metric at its best epoch."""
    if name in results:
        return results[name]
    series = [v for _, v in history.get(name, [])]
    if not series:
        return None
    return max(series) if metrics.mode(name, task) == "max" else min(series)


def finish_parent(cfg: DictConfig) -> dict[str, Any]:
    """Summarise the trials on the parent and end it. Returns the summary (also logged)."""
    from mlflow.tracking import MlflowClient

    from mlproj.tracking.runs import tracking_uri

    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None:
        return {}
    if _shared["value"] and parent in _open_parents:
        # Only the last worker of a shared study summarises and ends the parent, after it has left: a summary
        # written by an earlier worker could land after the last one's and hide the trials finished meanwhile.
        others = study.leave(cfg)
        if others:
            _open_parents.discard(parent)
            print(f"mlproj: sweep {parent}: this worker is done; {len(others)} other worker(s) still on it end it")
            return {"parent": parent, "status": "RUNNING"}
    client = MlflowClient(tracking_uri(cfg.tracking), cfg.tracking.registry_uri)
    experiment_id = client.get_run(parent).info.experiment_id
    trials = client.search_runs([experiment_id], filter_string=f"tags.`{tags.PARENT}` = '{parent}'", max_results=10000)
    trials = sorted(trials, key=lambda r: r.info.start_time)
    first = next((t for t in trials if t.data.tags.get(tags.TASK)), None)
    task = first.data.tags[tags.TASK] if first else None
    if first:  # its metric names and directions (a launcher may have trained the trials in other processes)
        metrics.declare_from_run(first.data.tags, first.data.params)
    objective = metrics.objective(cfg.sweep.objective, task) if task else None
    rows, best = [], None
    for trial in trials:
        score = trial.data.metrics.get(OBJECTIVE_METRIC)
        pruned = trial.data.tags.get(tags.SWEEP_PRUNED) == "true"
        row = {
            "run_id": trial.info.run_id,
            "name": trial.info.run_name,
            "status": "PRUNED" if pruned else trial.info.status,
            "overrides": " ".join(json.loads(trial.data.tags.get(tags.OVERRIDES, "[]"))),
            "objective": score,
            **{k: v for k, v in sorted(trial.data.metrics.items()) if k.startswith("test_")},
        }
        rows.append(row)
        usable = row["status"] == "FINISHED" and score is not None and task and objective
        if usable and (best is None or metrics.is_better(objective, task, score, best[1])):
            best = (trial, score)
    summary: dict[str, Any] = {"parent": parent, "trials": len(rows), "objective": objective}
    summary["failed"] = sum(r["status"] == "FAILED" for r in rows)
    _log_table(client, parent, rows)
    if rows and objective:
        _log_objective_plot(client, parent, rows, objective)
    if best is not None:
        trial, score = best
        summary.update(best_run_id=trial.info.run_id, best_objective=score, objective=objective)
        client.set_tag(parent, tags.SWEEP_BEST_RUN, trial.info.run_id)
        client.log_metric(parent, f"best_{objective}", score)
        for key, value in trial.data.metrics.items():
            if key.startswith("test_"):
                client.log_metric(parent, f"best_{key}", value)
    status = "FAILED" if not rows or summary["failed"] == len(rows) else "FINISHED"
    _open_parents.discard(parent)
    best_text = f"; best {objective}={best[1]:.6g} in run {best[0].info.run_id}" if best else ""
    client.set_terminated(parent, status)
    print(f"mlproj: sweep {parent} {status}: {len(rows)} trials, {summary['failed']} failed{best_text}")
    summary["status"] = status
    return summary


def _log_table(client: Any, parent: str, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    client.log_text(parent, buffer.getvalue(), "sweep/trials.csv")


def _log_objective_plot(client: Any, parent: str, rows: list[dict[str, Any]], objective: str) -> None:
    """The objective per trial, and against each swept parameter (numbers on an axis, choices as labels)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    declared, varied = _swept_env(), _swept_from(rows)
    params: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        if row["objective"] is None:
            continue
        for item in row["overrides"].split():
            key, _, value = item.partition("=")
            if key.lstrip("+~") in declared or key in varied:
                params.setdefault(key, []).append((value, row["objective"]))
    fig, axes = plt.subplots(1, 1 + len(params), figsize=(4.5 * (1 + len(params)), 3.8), squeeze=False)
    done = [(i, r["objective"]) for i, r in enumerate(rows) if r["objective"] is not None]
    ax = axes[0][0]
    if done:
        xs, ys = zip(*done, strict=True)
        ax.plot(xs, ys, marker="o", linestyle=":")
    ax.set(title=f"{objective} per trial", xlabel="trial", ylabel=objective)
    for ax, (key, points) in zip(axes[0][1:], params.items(), strict=True):
        values, scores = zip(*points, strict=True)
        try:
            numbers = [float(v) for v in values]
            ax.scatter(numbers, scores)
            if min(numbers) > 0 and max(numbers) / min(numbers) > 100:
                ax.set_xscale("log")  # learning rates and other log-scale searches
        except ValueError:  # choices that are not numbers
            ax.scatter(values, scores)
            ax.tick_params(axis="x", labelrotation=30)
        ax.set(title=key, xlabel=key, ylabel=objective)
    fig.tight_layout()
    client.log_figure(parent, fig, "sweep/objective.png")
    plt.close(fig)


def _swept_env() -> set[str]:
    """The keys start_parent recorded as swept (grid sweeps and the Optuna sweeper's space)."""
    return set(json.loads(os.environ.get(SWEPT_ENV, "[]")))


def _swept_from(rows: list[dict[str, Any]]) -> set[str]:
    """Keys whose value differs between trials: what a grid or a search varied."""
    seen: dict[str, set[str]] = {}
    for row in rows:
        for item in row["overrides"].split():
            key, _, value = item.partition("=")
            seen.setdefault(key, set()).add(value)
    return {k for k, v in seen.items() if len(v) > 1 and "sweep.trial" not in k}
