"""Preemption and resume: a SIGTERM saves a checkpoint and ends the run KILLED; resume=auto continues it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlproj.errors import ConfigError
from mlproj.train import run
from tests.conftest import QUICK, run_cli
from tests.reliability import faults

EPOCHS = 10


@pytest.mark.slow
def test_preempted_run_resumes_into_the_same_run(store, tmp_path):
    args = [*faults.PACED, f"tracking.uri={store}"]
    client = MlflowClient(store)
    code, output = faults.interrupted(args, tmp_path, client, 3, signal.SIGTERM)  # a cluster preemption
    assert code == 143, output[-3000:]  # 128 + SIGTERM, as a shell and a scheduler read it
    assert "interrupted (SIGTERM)" in output
    killed = faults.only_run(client)
    assert killed.info.status == "KILLED"
    note = Path(client.download_artifacts(killed.info.run_id, "error/interrupted.txt", str(tmp_path)))
    assert note.read_text() == "interrupted (SIGTERM)"
    folder = Path(killed.data.tags["mlproj.checkpoint_dir"])
    assert (folder / "last.ckpt").is_file() and (folder / "interrupted.ckpt").is_file()
    assert json.loads((folder / "mlflow_run.json").read_text())["run_id"] == killed.info.run_id

    again = run_cli(*args, "resume=auto", cwd=tmp_path, env=faults.importable())
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = faults.only_run(client)  # the same run, not a second one
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert int(resumed.data.tags["mlproj.resumed_from_epoch"]) >= 3
    assert faults.val_steps(client, resumed.info.run_id) == list(range(EPOCHS))  # epochs continue, none missing
    assert "test_rmse" in resumed.data.metrics and resumed.data.tags["mlproj.model_uri"].startswith("models:/")

    third = run_cli(*args, "resume=auto", cwd=tmp_path, env=faults.importable())  # a finished run is not trained again
    assert third.returncode == 0 and "already FINISHED" in third.stdout
    assert faults.only_run(client).info.end_time == resumed.info.end_time


@pytest.mark.slow
def test_hard_killed_run_left_running_is_resumed(store, tmp_path):
    """SIGKILL (an OOM killer, a node lost) cannot be handled: the run stays RUNNING; resume=auto ends it."""
    args = [*faults.PACED, f"tracking.uri={store}"]
    client = MlflowClient(store)
    faults.interrupted(args, tmp_path, client, 2, signal.SIGKILL)
    assert faults.only_run(client).info.status == "RUNNING"
    again = run_cli(*args, "resume=auto", cwd=tmp_path, env=faults.importable())
    assert again.returncode == 0, again.stderr[-3000:]
    finished = faults.only_run(client)
    assert finished.info.status == "FINISHED"
    assert faults.val_steps(client, finished.info.run_id) == list(range(EPOCHS))


def test_resume_by_run_id_and_its_errors(make_cfg, store, tmp_path):
    first = run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear"), [], tmp_path / "a")
    with pytest.raises(ConfigError, match="already FINISHED"):
        run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear", f"resume={first.run_id}"), [], tmp_path / "b")
    with pytest.raises(ConfigError, match="no such run"):
        run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear", f"resume={'0' * 31}1"), [], tmp_path / "c")
    with pytest.raises(ConfigError, match="resume=latest is not valid; choose one of: null"):
        run(make_cfg(*QUICK, f"tracking.uri='{store}'", "resume=latest"), [], tmp_path / "d")
    faults.only_run(MlflowClient(store))  # still the one run


def test_resume_auto_without_an_earlier_run_starts_one(make_cfg, store, tmp_path, capsys):
    result = run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear", "resume=auto"), [], tmp_path / "a")
    assert "no earlier run of this config" in capsys.readouterr().out
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_ddp_run_preempted_and_resumed(store, tmp_path):
    """2 processes over gloo: SIGTERM to the launching rank stops both and ends the run KILLED; resume=auto
    continues it on both ranks from the same checkpoint, into the same (single) run."""
    args = [*faults.PACED, "trainer=ddp_cpu", f"tracking.uri={store}"]
    client = MlflowClient(store)
    code, output = faults.interrupted(args, tmp_path, client, 2, signal.SIGTERM, timeout=240)
    assert code == 143, output[-3000:]
    assert faults.only_run(client).info.status == "KILLED"
    again = run_cli(*args, "resume=auto", cwd=tmp_path, env=faults.importable(), timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    run_ = faults.only_run(client)
    assert run_.info.status == "FINISHED" and int(run_.data.tags["mlproj.resumed_from_epoch"]) >= 2
    assert faults.val_steps(client, run_.info.run_id) == list(range(EPOCHS))


def test_a_second_resumer_is_refused_before_it_touches_the_run(make_cfg, store, tmp_path):
    from filelock import FileLock

    interrupted = [*QUICK, f"tracking.uri='{store}'", "model=linear", "model._target_=tests.models.FailsAtStep"]
    interrupted.append("+model.interrupt=true")
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg(*interrupted), [], tmp_path / "a")
    (killed,) = MlflowClient(store).search_runs(["1"])
    folder = Path(killed.data.tags["mlproj.checkpoint_dir"])
    with FileLock(str(folder / ".lock")), pytest.raises(ConfigError, match="being trained by another process"):
        run(make_cfg(*interrupted, "resume=auto"), [], tmp_path / "b")  # the first resumer still holds it
    after = MlflowClient(store).get_run(killed.info.run_id)
    assert after.info.status == "KILLED" and "mlproj.error" not in after.data.tags
