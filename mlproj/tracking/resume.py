"""`resume=auto` or `resume=<run id>`: continue an interrupted run from its last checkpoint, into the same run.

The run id is kept beside the checkpoints (`mlflow_run.json`) and the checkpoint folder on the run (a tag), so
either side finds the other. `auto` picks the latest run of the same config (its config digest) in the
experiment: interrupted (KILLED, FAILED, or RUNNING after a hard kill) → continue it; FINISHED → nothing is
trained again; none → a new run. Training resumes from `last.ckpt`, the end of the last completed epoch (the
mid-epoch state at an interruption is kept as `interrupted.ckpt`, for inspection), with the optimizer,
scheduler, early-stopping and best-checkpoint state Lightning stores in it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproj import tags
from mlproj.errors import ConfigError

log = logging.getLogger(__name__)

CHECKPOINT_DIR_ENV = "MLPROJ_CHECKPOINT_DIR"  # rank 0 → the DDP ranks Lightning's launcher starts
RESUME_ENV = "MLPROJ_RESUME_CHECKPOINT"
RUN_FILE = "mlflow_run.json"
LAST = "last.ckpt"
AUTO = "auto"


@dataclass
class ResumePoint:
    run_id: str
    status: str
    checkpoint_dir: Path | None
    checkpoint: Path | None  # last.ckpt, when an epoch was completed before the interruption

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"


def locate(client: Any, experiment_id: str, resume: str | None, digest: str, say: bool = True) -> ResumePoint | None:
    """The run to continue, or None for a new run. Raises ConfigError for an explicit id that cannot be."""
    if resume is None:
        return None
    if resume == AUTO:
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlproj.config_digest` = '{digest}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            if say:
                print("mlproj: resume=auto: no earlier run of this config; starting a new run", flush=True)
            return None
        run = runs[0]
    else:
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(resume)
        except MlflowException:
            raise ConfigError(f"resume={resume}: no such run in this tracking store") from None
        if run.info.experiment_id != experiment_id:
            name = client.get_experiment(run.info.experiment_id).name
            raise ConfigError(f"resume={resume}: that run is in experiment {name!r}; set tracking.experiment={name}")
    point = _point(run)
    if point.finished:
        if resume != AUTO:
            raise ConfigError(f"resume={resume}: that run already FINISHED; train a new one with resume=null")
        return point
    if point.checkpoint_dir is None:
        where = run.data.tags.get(tags.CHECKPOINT_DIR, "no checkpoint folder recorded")
        if resume != AUTO:
            raise ConfigError(f"resume={resume}: its checkpoints are not on this machine ({where})")
        if say:
            print(
                f"mlproj: resume=auto: the latest run of this config ({run.info.run_id}, {point.status}) has no "
                f"checkpoints here ({where}); starting a new run",
                flush=True,
            )
        return None
    return point


def _point(run: Any) -> ResumePoint:
    folder = run.data.tags.get(tags.CHECKPOINT_DIR)
    directory = Path(folder) if folder else None
    if directory is not None and _run_id_beside(directory) != run.info.run_id:
        directory = None  # moved, deleted, or reused by another run
    last = directory / LAST if directory is not None else None
    return ResumePoint(run.info.run_id, run.info.status, directory, last if last and last.is_file() else None)


def _run_id_beside(directory: Path) -> str | None:
    try:
        return json.loads((directory / RUN_FILE).read_text())["run_id"]
    except (OSError, ValueError, KeyError):
        return None


@contextmanager
def lock(directory: Path, run_id: str | None) -> Iterator[None]:
    """Hold a lock on the checkpoint folder while training, taken before the run is (re)opened: a second
    process resuming the same run (a requeued job whose first copy still runs) is refused before it touches
    the run, rather than interleaved with the first."""
    from filelock import FileLock, Timeout

    directory.mkdir(parents=True, exist_ok=True)
    held = FileLock(str(directory / ".lock"))
    try:
        held.acquire(timeout=0)
    except Timeout:
        # Name the run the holder trains (recorded beside its checkpoints once it opened it), not this one's.
        holder = _run_id_beside(directory) or run_id
        who = f"run {holder}" if holder else "a run that is starting"
        raise ConfigError(
            f"{who} is being trained by another process in {directory} (lock {directory / '.lock'})"
        ) from None
    try:
        yield
    finally:
        held.release()


def record(directory: Path, run_id: str, tracking_uri: str) -> None:
    """The run id beside the checkpoints (the run holds the folder in its tags.CHECKPOINT_DIR)."""
    from mlproj.tracking.runs import redact

    text = json.dumps({"run_id": run_id, "tracking_uri": redact(tracking_uri)}, indent=1) + "\n"
    (directory / RUN_FILE).write_text(text)


def announce(client: Any, run_id: str, checkpoint: Path | None) -> None:
    """A resumed run says from where: a tag on the run, and a line."""
    epoch = resumed_epoch(checkpoint) if checkpoint else 0
    client.set_tag(run_id, tags.RESUMED_FROM_EPOCH, str(epoch))
    print(
        f"mlproj: resuming run {run_id} after {epoch} completed epoch(s) ({checkpoint or 'from the start'})", flush=True
    )


def resumed_epoch(checkpoint: Path) -> int:
    """The epoch a checkpoint resumes at (for the run's tag and the message)."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state.get("epoch", -1)) + 1


def tell_other_ranks(directory: Path, checkpoint: Path | None) -> None:
    """Lightning's DDP launcher starts ranks > 0 from inside fit, with this process's environment: they
    resume from the same checkpoint, into the same folder."""
    os.environ[CHECKPOINT_DIR_ENV] = str(directory)
    os.environ[RESUME_ENV] = str(checkpoint or "")


def as_rank_zero(cfg: Any, default_dir: Path) -> tuple[Path, Path | None]:
    """(checkpoint folder, checkpoint to resume from) for a rank > 0: what rank 0 chose."""
    if CHECKPOINT_DIR_ENV in os.environ:
        resume_from = os.environ.get(RESUME_ENV)
        return Path(os.environ[CHECKPOINT_DIR_ENV]), Path(resume_from) if resume_from else None
    if cfg.resume is None:
        return default_dir, None
    # torchrun or SLURM started every rank at once: look the run up as rank 0 does, reading the store only
    # (rank 0 waits for the others to join the process group before training, so both see the same state).
    from mlflow.tracking import MlflowClient

    from mlproj.tracking.runs import config_digest, tracking_uri

    client = MlflowClient(tracking_uri(cfg.tracking))
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    try:
        point = (
            locate(client, experiment.experiment_id, cfg.resume, config_digest(cfg), say=False) if experiment else None
        )
    except ConfigError:
        return default_dir, None  # rank 0 reports it and stops
    if point is None or point.finished or point.checkpoint_dir is None:
        return default_dir, None
    return point.checkpoint_dir, point.checkpoint
