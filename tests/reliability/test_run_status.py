"""Runs always end: an exception ends FAILED with its traceback, Ctrl-C KILLED, a diverging loss FAILED."""

from __future__ import annotations

import signal
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlproj.train import run
from tests.conftest import QUICK
from tests.test_train import runs_of


def test_exception_ends_the_run_failed_with_traceback(make_cfg, store, tmp_path):
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear", "model._target_=tests.models.FailsAtStep")
    with pytest.raises(RuntimeError, match="boom"):
        run(cfg, [], tmp_path / "out")
    (failed,) = runs_of(store, "mlproj-diabetes")
    assert failed.info.status == "FAILED"
    assert "RuntimeError: boom" in failed.data.tags["mlproj.error"]
    text = Path(mlflow.artifacts.download_artifacts(run_id=failed.info.run_id, artifact_path="error/traceback.txt"))
    assert "Traceback" in text.read_text() and "boom" in text.read_text()


def test_ctrl_c_ends_the_run_killed(make_cfg, store, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    cfg = make_cfg(
        *QUICK,
        f"tracking.uri='{store}'",
        "model=linear",
        "model._target_=tests.models.FailsAtStep",
        "+model.interrupt=true",
    )
    with pytest.raises(KeyboardInterrupt):
        run(cfg, [], tmp_path / "out")
    (killed,) = runs_of(store, "mlproj-diabetes")
    assert killed.info.status == "KILLED"
    assert signal.getsignal(signal.SIGINT) == before  # Lightning's SIG_IGN is undone


def test_diverging_training_stops_failed_and_registers_nothing(make_cfg, store, tmp_path):
    from mlproj.errors import TrainingDiverged

    cfg = make_cfg(
        *QUICK, f"tracking.uri='{store}'", "optimizer=sgd", "optimizer.lr=1000", "++registry.thresholds.test_r2=-1000"
    )
    with pytest.raises(TrainingDiverged, match="training diverged"):
        run(cfg, [], tmp_path / "out")
    (failed,) = runs_of(store, "mlproj-diabetes")
    assert failed.info.status == "FAILED" and "TrainingDiverged" in failed.data.tags["mlproj.error"]
    assert MlflowClient(store).search_registered_models() == []
