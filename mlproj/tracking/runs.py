"""MLflow: where runs go, the experiment (got or created once), the run's lifecycle and what it records."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shlex
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from mlproj import __version__, tags
from mlproj.config.schema import TrackingConfig
from mlproj.errors import Interrupted, TrackingUnreachable
from mlproj.tracking.masking import MASK, SECRET_KEY, hide_mlflow_urls, redact, redacted, view_lines
from mlproj.tracking.provenance import drop_foreign_git_tags, git_tags

log = logging.getLogger(__name__)

PARAM_VALUE_LIMIT = 6000  # MLflow 3's limit on a param value
TAG_VALUE_LIMIT = 5000


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def interrupt_signal(exc: BaseException | None) -> int:
    """The signal behind a KeyboardInterrupt: SIGINT unless it was an `Interrupted` from another one."""
    return int(getattr(exc, "signum", signal.SIGINT))


# What a lost insert race looks like from sqlite, PostgreSQL and MySQL, locally or behind an MLflow server.
_WRITE_CONFLICT = re.compile(r"UNIQUE constraint failed|duplicate key value|Duplicate entry|database is locked")


def write_again_on_conflict(call: Any, *args: Any, attempts: int = 6, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)`, again after a short pause when the store says another process inserted the
    same row at the same moment (MLflow's SQL store inserts after a read, without retrying)."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except MlflowException as exc:
            if attempt == attempts - 1 or not _WRITE_CONFLICT.search(str(exc.message)):
                raise
            log.debug("write conflict in %s, writing again: %s", getattr(call, "__name__", call), exc.message)
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)
    raise AssertionError("unreachable")


def tracking_uri(cfg: TrackingConfig) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else an absolute sqlite store in the working directory."""
    if cfg.uri:
        return _absolute_sqlite(cfg.uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return _absolute_sqlite(os.environ["MLFLOW_TRACKING_URI"])
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _absolute_sqlite(uri: str) -> str:
    # A relative sqlite path depends on the cwd of whoever reads it later; pin it now.
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def connect(cfg: TrackingConfig) -> tuple[MlflowClient, str]:
    """Point MLflow at the configured stores and get or create the experiment; returns (client, id).

    A fresh sqlite store races when several processes create its tables or the same experiment at once
    (parallel sweep jobs), so the first use is serialised with a file lock beside the database.
    """
    uri = tracking_uri(cfg)
    from mlproj.tracking import outage

    if outage.is_remote(uri):
        outage.bound_client_retries()
        outage.probe(uri)  # a clear error within seconds, before anything is created or trained
    mlflow.set_tracking_uri(uri)
    hide_mlflow_urls(uri)  # its "View run" lines would print the URL's password
    if cfg.registry_uri:
        mlflow.set_registry_uri(cfg.registry_uri)
    db = sqlite_path(uri)
    lock: Any = nullcontext()
    if db is not None:
        from filelock import FileLock

        db.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(db) + ".lock", timeout=120)
    with lock:
        client = MlflowClient(uri, cfg.registry_uri)
        # `mlflow run` created the run (MLFLOW_RUN_ID), or a sweep its parent: use that run's experiment.
        launched = os.environ.get("MLFLOW_RUN_ID") or os.environ.get("MLPROJ_PARENT_RUN_ID")
        if launched:
            experiment_id = client.get_run(launched).info.experiment_id
        else:
            try:
                experiment_id = get_or_create_experiment(client, cfg, db)
            except MlflowException as exc:
                if not outage.is_remote(uri):
                    raise
                # Something answers, but not as an MLflow server (a wrong port, a proxy, an auth wall).
                first = str(exc).splitlines()[0][:300]
                raise TrackingUnreachable(
                    f"{redact(uri)} does not answer as an MLflow tracking server ({first}); nothing was created"
                ) from None
    mlflow.set_experiment(experiment_id=experiment_id)
    return client, experiment_id


def get_or_create_experiment(client: MlflowClient, cfg: TrackingConfig, db: Path | None) -> str:
    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = cfg.artifact_location
    if location is None and db is not None:
        # Artifacts beside the store (not in whatever cwd), one folder per experiment, as MLflow lays out.
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg.experiment).strip("_") or "experiment"
        location = (db.parent / "mlruns" / folder).as_uri()
    try:
        return client.create_experiment(cfg.experiment, artifact_location=location, tags=dict(cfg.experiment_tags))
    except MlflowException as exc:
        # Another process (or server client) created it between our lookup and create.
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            raise
        log.debug("experiment created concurrently: %s", exc)
        return experiment.experiment_id


@contextmanager
def tracked_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str | None,
    tags: dict[str, str],
    system_metrics: bool = False,
    run_id: str | None = None,
) -> Iterator[Any]:
    """An MLflow run that always ends with a terminal status: FINISHED, FAILED (traceback saved) or KILLED.

    Under `mlflow run`, MLFLOW_RUN_ID names the run MLflow created; mlflow.start_run resumes it, as it
    resumes `run_id` (resume=...). A run whose results were kept locally (the server was lost) is left for
    `python -m mlproj.upload` to end.
    """
    from mlproj.errors import KeptLocally
    from mlproj.tracking.outage import is_connection_error

    run = mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else experiment_id,
        run_name=None if run_id else run_name,
        tags=tags,
        log_system_metrics=system_metrics or None,
    )
    run_id = run.info.run_id
    drop_foreign_git_tags(client, run, tags)
    # SIGTERM (a cluster preemption, `kill`) ends the run KILLED like Ctrl-C. During fit Lightning installs
    # its own handler, which stops training at the next step; this one covers the rest of the run.
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if _main_thread() else None
    try:
        yield run
    except KeptLocally:
        # The server is gone: the run stays RUNNING until `mlproj.upload` ends it; only forget it here.
        with suppress(Exception):
            mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))
        raise
    except KeyboardInterrupt as exc:
        _end(client, run_id, RunStatus.KILLED, f"interrupted ({signal_name(interrupt_signal(exc))})")
        raise
    except BaseException as exc:
        _end(client, run_id, RunStatus.FAILED, traceback.format_exc(), exc)
        raise
    else:
        try:
            mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))
        except Exception as exc:  # the train path already set FINISHED through its retries
            if not is_connection_error(exc):
                raise
        if hide_mlflow_urls(client.tracking_uri):
            print(view_lines(client.tracking_uri, run.info.experiment_id, run_id, run.info.run_name), flush=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _end(client: MlflowClient, run_id: str, status: int, detail: str, exc: BaseException | None = None) -> None:
    try:
        client.log_text(run_id, detail, "error/traceback.txt" if exc else "error/interrupted.txt")
        if exc is not None:
            message = f"{type(exc).__name__}: {exc}"[:TAG_VALUE_LIMIT]
            client.set_tag(run_id, tags.ERROR, message)
    except Exception as log_exc:  # never let reporting hide the original error
        log.warning("could not save the error on run %s: %s", run_id, log_exc)
    finally:
        _end_quietly(status)


def _end_quietly(status: int) -> None:
    """End the active run; a server that does not answer must not replace the error being reported."""
    try:
        mlflow.end_run(RunStatus.to_string(status))
    except Exception as exc:
        log.warning("could not mark the run %s: %s", RunStatus.to_string(status), exc)


# --- what a run records -------------------------------------------------------------------------------


def epoch_history(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch train/val series of a run: {metric: [(epoch, value), ...]}."""
    names = [k for k in client.get_run(run_id).data.metrics if k.startswith(("train_", "val_"))]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in names}


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys -> string values; lists stay whole (as JSON), as MLflow params are flat strings."""
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    value = json.dumps(node) if isinstance(node, list | tuple) else str(node)
    if len(value) > PARAM_VALUE_LIMIT:
        value = value[: PARAM_VALUE_LIMIT - 15] + "...[truncated]"
    return {prefix.rstrip("."): value}


def log_inputs(client: MlflowClient, run_id: str, cfg: DictConfig, overrides: list[str], plan: Any) -> None:
    """A new run's inputs: the config (params and artifacts), and the training table as a dataset."""
    log_config(client, run_id, cfg, overrides, builtin=plan.builtin)
    if plan.prepared is not None:
        table = plan.prepared.table
        log_dataset(table.features, table.target, table.name, table.source)
        if table.dropped_target_rows:
            client.log_metric(run_id, "data_dropped_target_rows", table.dropped_target_rows)


# The built-in task's parts: a task of your own does not use them, so its params leave them out.
BUILTIN_TASK_PARTS = ("model", "optimizer", "scheduler", "loss", "metrics")


def log_config(client: MlflowClient, run_id: str, cfg: DictConfig, overrides: list[str], builtin: bool = True) -> None:
    resolved = redacted(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    unused = () if builtin else BUILTIN_TASK_PARTS
    params = [Param(k, v) for k, v in flatten(resolved).items() if k.partition(".")[0] not in unused]
    for start in range(0, len(params), 100):  # MLflow's batch limit
        client.log_batch(run_id, params=params[start : start + 100])
    client.log_text(run_id, OmegaConf.to_yaml(OmegaConf.create(resolved)), "config/config.yaml")
    client.log_text(run_id, "\n".join(redact(o) for o in overrides) + "\n", "config/overrides.txt")


def json_tag(value: Any) -> str:
    return json.dumps(value, sort_keys=True)[:TAG_VALUE_LIMIT]


def config_digest(cfg: DictConfig) -> str:
    """A short fingerprint of the resolved config: equal digests mean equal training recipes."""
    import hashlib

    recipe = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for section, key in NOT_RECIPE:
        (recipe.get(section, {}) if section else recipe).pop(key, None)
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


# How a run is watched or continued, not what it trains: left out of the digest, so `resume=auto quiet=true`
# finds the run started without them.
NOT_RECIPE = [("", "resume"), ("", "quiet"), ("trainer", "progress_bar"), ("tracking", "retry_for")]


def provenance_tags(overrides: list[str], extra: dict[str, str]) -> dict[str, str]:
    found = {
        tags.VERSION: __version__,
        tags.OVERRIDES: json.dumps([redact(o) for o in overrides])[:TAG_VALUE_LIMIT],
        tags.COMMAND: redact(" ".join([_program(), shlex.join(sys.argv[1:])]).strip())[:TAG_VALUE_LIMIT],
    }
    found.update(git_tags())
    found.update({k: MASK if SECRET_KEY.search(k) else redact(str(v)) for k, v in extra.items()})
    return found


def _program() -> str:
    name = Path(sys.argv[0]).name
    return "python -m mlproj" if name == "__main__.py" else name


def log_dataset(features: Any, target: Any, name: str, source: str) -> None:
    """The training table as a run input with MLflow's digest (context: training)."""
    from mlflow.data.pandas_dataset import from_pandas

    from mlproj.packaging.pyfunc import integer_schema_hint_silenced

    frame = features.copy()
    frame[target.name] = target.to_numpy()
    with integer_schema_hint_silenced(), warnings.catch_warnings():
        # MLflow registers its local-file source twice and warns that a path is ambiguous between them.
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
        shown = redact(source)  # a path or URL marked secret (tracking.secret_keys) stays masked here too
        local = source if shown == source and Path(source).exists() else None
        dataset = from_pandas(frame, source=local, targets=target.name, name=name)
        # Parallel sweep jobs log the same table into one experiment: MLflow adds a dataset with a
        # read-then-insert, which one of two simultaneous jobs can lose; written again, it finds the row.
        write_again_on_conflict(mlflow.log_input, dataset, context="training", tags={tags.DATASET_SOURCE: shown})
