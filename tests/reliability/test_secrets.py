"""Credentials never reach what a run writes."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlproj.train import run
from tests.conftest import QUICK, run_cli


def test_secrets_never_reach_the_run(make_cfg, store, tmp_path):
    """Everything the run wrote is searched: params, tags, metrics' names, every artifact's text."""
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear", "++tracking.tags.db_password=hunter2", *LOOKS)
    overrides = ["++tracking.tags.db_password=hunter2", "tracking.registry_uri=http://bob:hunter2@registry:5000"]
    overrides += LOOKS
    result = run(cfg, overrides, tmp_path / "out")
    client = MlflowClient(store)
    found = client.get_run(result.run_id)
    assert found.data.tags["db_password"] == "***"
    assert found.data.params["tracking.tags.db_password"] == "***"
    assert "bob:***@registry" in found.data.tags["mlproj.overrides"]
    written = json.dumps([found.data.params, found.data.tags, list(found.data.metrics)])
    local = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(tmp_path / "artifacts")))
    files = {p.relative_to(local).as_posix(): p.read_text(errors="ignore") for p in local.rglob("*") if p.is_file()}
    # the search reached the files that hold the config and the command line (an empty download searched nothing)
    assert {"config/config.yaml", "config/overrides.txt"} <= set(files), sorted(files)
    assert "db_password: '***'" in files["config/config.yaml"], files["config/config.yaml"]
    assert "bob:***@registry" in files["config/overrides.txt"], files["config/overrides.txt"]
    written += "".join(files.values())
    assert "hunter2" not in written
    for secret in ("hunter3", "hunter4", "hunter5", "hunter6", JWT, "ghp_", "Xq7Lm"):
        assert secret not in written, secret


# Keys short words name (db_pass, auth, session) and values that look like tokens whatever their key
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJodW50ZXIifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJVadQssw5c"
LOOKS = [
    "++tracking.tags.db_pass=hunter3",
    "++tracking.tags.http_auth=hunter4",
    "++tracking.tags.session_id=hunter5",
    "++tracking.tags.cookie=hunter6",
    "++tracking.tags.header='Authorization: Bearer hunter7hunter7'",
    f"++tracking.tags.jwt_note='sent {JWT}'",
    "++tracking.tags.note='ghp_R2d2C3poR2d2C3poR2d2C3po and Xq7Lm9Pz2Rt8Vw4Ky6Nb3Hj5Gf1Dc0Sa'",
]


@pytest.mark.slow
def test_no_credential_in_anything_a_command_leaves(store, tmp_path):
    """Environment credentials, a key marked secret and a secret-looking key: searched in the run (params,
    tags, every artifact), the printed output, and every file the command left (Hydra's copies, logs)."""
    env = {"MLFLOW_TRACKING_TOKEN": "s3cr3t-env-token", "DATABRICKS_TOKEN": "dapi-s3cr3t-42"}
    proc = run_cli(
        "debug=quick",
        "model=linear",
        f"tracking.uri={store}",
        "++tracking.tags.note='made with s3cr3t-env-token'",
        "++tracking.tags.bucket='https://bucket/signed?sig=s3cr3t-signature'",
        "tracking.secret_keys=[tracking.tags.bucket]",
        "++tracking.tags.db_password=s3cr3t-hunter2",
        "++tracking.tags.db_pass=s3cr3t-pass",  # a short word as a whole part of the key
        "++tracking.tags.header='Authorization: Bearer s3cr3t-bearer'",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(store)
    (found,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert found.data.tags["bucket"] == "***" and found.data.tags["db_password"] == "***"
    assert found.data.tags["note"] == "made with ***"
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=found.info.run_id, dst_path=str(tmp_path / "dl"), tracking_uri=store)
    )
    written = json.dumps([found.data.params, found.data.tags]) + proc.stdout + proc.stderr
    written += "".join(p.read_text(errors="ignore") for p in local.rglob("*") if p.is_file())
    written += "".join(p.read_text(errors="ignore") for p in (tmp_path / "outputs").rglob("*") if p.is_file())
    assert "s3cr3t" not in written


@pytest.mark.slow
def test_mlflow_view_run_lines_are_masked(mlflow_server, tmp_path):
    """MLflow prints "View run ... at: URL" when a run on a server ends: with credentials in the tracking URI,
    the lines are mlproj's, masked; nothing the command printed or left holds the password."""
    url = mlflow_server.replace("http://", "http://alice:PAss-w0rd-42@")
    proc = run_cli("debug=quick", "model=linear", "tracking=server", f"tracking.uri={url}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = proc.stdout + proc.stderr
    written += "".join(p.read_text(errors="ignore") for p in (tmp_path / "outputs").rglob("*") if p.is_file())
    assert "PAss-w0rd-42" not in written
    (line,) = [x for x in proc.stdout.splitlines() if "View run" in x]
    assert "http://alice:***@127.0.0.1" in line and "/runs/" in line, line
