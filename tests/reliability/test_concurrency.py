"""Parallel processes on one fresh sqlite store: one experiment, no lock errors, every run terminal."""

from __future__ import annotations

import multiprocessing

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli


def _connect(uri: str, queue) -> None:
    from mlproj.config.schema import TrackingConfig
    from mlproj.tracking.runs import connect

    queue.put(connect(TrackingConfig(uri=uri, experiment="race"))[1])


@pytest.mark.slow
@pytest.mark.serial
def test_parallel_first_use_of_a_fresh_store_makes_one_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path / 'race.db'}"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_connect, args=(uri, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    ids = {queue.get() for _ in procs}
    assert len(ids) == 1
    names = [e.name for e in MlflowClient(uri).search_experiments()]
    assert sorted(names) == ["Default", "race"]


@pytest.mark.slow
@pytest.mark.serial
def test_four_parallel_jobs_on_a_fresh_sqlite_store(tmp_path):
    out = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "model=linear,mlp",
        "optimizer.lr=0.01,0.1",
        "debug=quick",
        "quiet=true",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "database is locked" not in out.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "mlproj-diabetes"]  # no duplicate
    runs = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert len(runs) == 5 and {r.info.status for r in runs} == {"FINISHED"}
    parent = next(r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent")
    assert sum(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in runs) == 4
