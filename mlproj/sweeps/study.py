"""One Optuna study worked by several processes at once (machines, SLURM jobs): the parent run they share.

Every worker runs the same `python -m mlproj -m hparams_search=optuna sweep.storage=...`; each opens the sweep's
parent run before its first trial. Whichever starts first must create it and the others find it, so the
get-or-create happens under a lock held in the one place every worker reaches, the study's storage:

- PostgreSQL: a session-level advisory lock (`pg_advisory_lock`), released when its connection closes, so
  also when the process holding it dies;
- sqlite (one machine, or a shared filesystem): a file lock beside the database.

Under the lock a worker creates the study if it is new, reads the parent recorded on it (a study user attr),
creates and records one if there is none (or it was deleted), and adds itself to the study's workers. When it
leaves (the end of its trials, an error, a SIGTERM) it removes itself under the lock again; only the last one
to leave ends the parent, so a worker finishing early, or killed, does not close the sweep under the others.
A worker lost without a word (SIGKILL, a node gone) stays listed; one of this machine whose process is gone
is dropped by the next worker that joins or leaves, one of another machine keeps the parent RUNNING (the
README says how to end it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig

from mlproj.sweeps.pruning import PARENT_ATTR, direction

log = logging.getLogger(__name__)

WORKERS_ATTR = "mlproj_workers"  # the workers now on the study: host:pid:nonce
JOINS_ATTR = "mlproj_joins"  # how many workers ever joined: each one's ordinal offsets its sampler's seed
LOCK_TIMEOUT_S = 300  # a worker holds the lock for a few store round trips; minutes means something is stuck

WORKER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"  # this process
_joined = {"ordinal": 0}  # this process's place among the study's workers, set by join()


def seed_offset() -> int:
    """Added to hydra.sweeper.seed: workers started at once with one seed would sample the same trials."""
    return _joined["ordinal"]


def shared_storage(cfg: DictConfig) -> tuple[str, str] | None:
    """(storage, study name) of an Optuna sweep on persistent storage; None otherwise (in memory: one process)."""
    sweeper = cfg.hydra.get("sweeper", {}) if "hydra" in cfg else {}
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage or not name or "mlproj_optuna" not in str(sweeper.get("_target_", "")):
        return None
    return str(storage), str(name)


@contextmanager
def storage_lock(storage: str, study_name: str) -> Iterator[None]:
    """Held by one process at a time across every worker of `study_name` in `storage`."""
    from sqlalchemy.engine import make_url

    url = make_url(storage)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            yield
            return
        from filelock import FileLock

        with FileLock(f"{url.database}.mlproj.lock", timeout=LOCK_TIMEOUT_S):
            yield
        return
    if backend != "postgresql":
        # MySQL and others: not tested here, so no lock is claimed; two parents can then appear under a race.
        log.warning("sweep.storage %s: no lock for its database kind; start the first worker alone", backend)
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # A 64-bit key per study; another application's advisory locks would need the same hash to collide.
    key = int.from_bytes(hashlib.sha256(f"mlproj.sweep:{study_name}".encode()).digest()[:8], "big", signed=True)
    engine = create_engine(url, poolclass=NullPool)  # one connection, closed (so unlocked) on the way out
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'"))
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
    finally:
        engine.dispose()


def join(cfg: DictConfig, client: Any, create: Any) -> str:
    """The study's parent run: found, or made with `create()` (returns a run id) by the first worker.
    This worker is added to the study's workers."""
    shared = shared_storage(cfg)
    assert shared is not None
    storage, name = shared
    import optuna

    goal = direction(cfg)  # before the lock: it prepares the data (the sweeper asks the same, cached)
    with storage_lock(storage, name):
        # The sweeper creates it too (load_if_exists); here first, so the parent is recorded on it under the lock.
        study = optuna.create_study(study_name=name, storage=storage, direction=goal, load_if_exists=True)
        parent = study.user_attrs.get(PARENT_ATTR)
        if parent and not _usable(client, parent):
            parent = None
        if parent is None:
            parent = create()
            study.set_user_attr(PARENT_ATTR, parent)
        workers = [w for w in study.user_attrs.get(WORKERS_ATTR, []) if w != WORKER and _alive(w)]
        study.set_user_attr(WORKERS_ATTR, [*workers, WORKER])
        _joined["ordinal"] = int(study.user_attrs.get(JOINS_ATTR, 0))
        study.set_user_attr(JOINS_ATTR, _joined["ordinal"] + 1)
    log.info("sweep parent %s shared by %d worker(s) of study %r", parent, len(workers) + 1, name)
    return parent


def leave(cfg: DictConfig) -> list[str]:
    """Take this worker off the study; the workers still on it (empty: this one was the last)."""
    shared = shared_storage(cfg)
    if shared is None:
        return []
    import optuna

    storage, name = shared
    with storage_lock(storage, name):
        study = optuna.load_study(study_name=name, storage=storage)
        others = [w for w in study.user_attrs.get(WORKERS_ATTR, []) if w != WORKER and _alive(w)]
        study.set_user_attr(WORKERS_ATTR, others)
    return others


def _alive(worker: str) -> bool:
    """False for a listed worker of this machine whose process is gone (killed with SIGKILL, say); workers of
    other machines cannot be asked, so they count as alive."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _usable(client: Any, run_id: str) -> bool:
    """A recorded parent still in the store (not deleted): a study outlives runs deleted by hand."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise  # anything else (a server hiccup) must not make a second parent
