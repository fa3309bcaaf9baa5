"""`python -m mlproj.server`: loopback unless --allow-remote, and MLflow's basic-auth app with --auth."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from mlproj import server
from tests.conftest import free_port, run_cli


def test_a_network_host_needs_allow_remote_and_is_told_about_authentication(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit) as refused:
        server.main(["--host", "0.0.0.0"])
    assert refused.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--host 0.0.0.0 serves the tracking store to the network; add --allow-remote" in line
    started: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, cmd: started.append(cmd))  # the command, not a server
    server.main(["--host", "0.0.0.0", "--allow-remote", "--backend-store-uri", f"sqlite:///{tmp_path / 's.db'}"])
    out = capsys.readouterr().out
    assert started and "WITHOUT authentication" in out and "--auth" in out and "reverse proxy" in out
    server.main(["--host", "::1", "--backend-store-uri", f"sqlite:///{tmp_path / 's.db'}"])  # loopback: no flag
    assert "WITHOUT" not in capsys.readouterr().out and len(started) == 2


@pytest.mark.slow
def test_basic_auth_server_refuses_strangers_and_takes_a_users_run(tmp_path):
    port, password = free_port(), "admin-pw-0123456789"
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": password}
    command = [sys.executable, "-m", "mlproj.server", "--auth", "--port", str(port)]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        status = _status_when_up(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", proc, tmp_path)
        assert status == 401  # no credentials, no data
        user = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
        done = run_cli("debug=quick", "model=linear", "tracking=server", f"tracking.uri={url}", cwd=tmp_path, env=user)
        assert done.returncode == 0, done.stderr[-3000:]
        assert password not in done.stdout + done.stderr
        os.environ.update(user)
        try:
            client = MlflowClient(url)
            (run,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
        finally:
            for key in user:
                os.environ.pop(key)
        assert run.info.status == "FINISHED" and "test_rmse" in run.data.metrics
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers
        proc.wait(30)
        log.close()


def _status_when_up(url: str, proc: subprocess.Popen, folder) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            return urllib.request.urlopen(url, timeout=2).status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            assert proc.poll() is None, (folder / "server.log").read_text()[-3000:]
            time.sleep(0.5)
    raise AssertionError("the server did not answer: " + (folder / "server.log").read_text()[-3000:])
