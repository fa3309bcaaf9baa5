"""The tracking server fails: unreachable at start, lost mid-run and back, lost for good."""

from __future__ import annotations

import subprocess
import sys
import time

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from mlproj.outage import EXIT_KEPT_LOCALLY
from tests.conftest import Server, free_port, run_cli
from tests.reliability import faults


def test_unreachable_server_fails_fast_before_training(tmp_path):
    started = time.monotonic()
    proc = run_cli("tracking=server", f"tracking.uri=http://127.0.0.1:{free_port()}", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("mlproj: error")]
    assert "is unreachable" in line and "nothing was created or trained" in line
    assert elapsed < 20, elapsed  # ~5 s of probing after Python's start-up (~3 s)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_server_lost_mid_run_and_back_the_run_completes(tmp_path):
    (tmp_path / "server").mkdir()
    server = Server(tmp_path / "server").start()
    client = MlflowClient(server.url)
    proc = faults.start([*faults.PACED, "tracking=server", f"tracking.uri={server.url}"], tmp_path)
    try:
        faults.wait_until(lambda: faults.epochs_logged(client) >= 2, proc)
        server.stop()
        time.sleep(4)  # training goes on; its metrics wait in the buffer
        server.start()
        output, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
        server.stop()
    server.start()
    try:
        assert proc.returncode == 0, output[-3000:]
        assert "tracking server lost" in output and "tracking server back" in output
        finished = faults.only_run(client)
        assert finished.info.status == "FINISHED"
        assert faults.val_steps(client, finished.info.run_id) == list(range(10))  # no metric lost
        assert "test_rmse" in finished.data.metrics and "mlproj.model_uri" in finished.data.tags
    finally:
        server.stop()


def test_server_never_back_keeps_everything_locally_then_upload(tmp_path):
    (tmp_path / "server").mkdir()
    server = Server(tmp_path / "server").start()
    client = MlflowClient(server.url)
    args = [
        *faults.PACED,
        "tracking=server",
        f"tracking.uri={server.url}",
        "tracking.retry_for=3",
        "tracking.log_plots=true",
    ]
    proc = faults.start([*args, "++registry.thresholds.test_rmse=1e9"], tmp_path)
    try:
        faults.wait_until(lambda: faults.epochs_logged(client) >= 2, proc)
        server.stop()
        output, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_KEPT_LOCALLY, output[-3000:]
    assert "nothing is lost" in output and "python -m mlproj.upload" in output
    (folder,) = tmp_path.glob("outputs/*/*/unlogged")
    assert (folder / "metrics.jsonl").read_text().count("\n") > 0
    assert (folder / "plots" / "learning_curves.png").is_file()
    model = mlflow.pyfunc.load_model(str(folder / "model"))  # usable now, without the server
    rows = pd.DataFrame({f"x{i}": [0.1, -0.2] for i in range(10)})
    assert len(model.predict(rows)) == 2

    server.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mlproj.upload", str(folder)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        run = faults.only_run(client)
        assert run.info.status == "FINISHED"
        assert faults.val_steps(client, run.info.run_id) == list(range(10))
        assert "test_rmse" in run.data.metrics and run.data.tags["mlproj.model_uri"].startswith("models:/")
        assert client.search_model_versions()  # the gate the run was trained with, applied after the upload
        assert "plots/learning_curves.png" in [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
        assert (folder.parent / "uploaded").is_dir() and not folder.exists()
    finally:
        server.stop()


def test_probe_sends_url_credentials_as_basic_auth(mlflow_server):
    from mlproj import outage

    outage.probe(mlflow_server.replace("http://", "http://alice:s3cret@"), timeout=5)  # answers: no error
