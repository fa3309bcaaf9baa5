"""Credentials never reach what a run writes."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from mlproj.train import run
from tests.conftest import QUICK


def test_secrets_never_reach_the_run(make_cfg, store, tmp_path):
    """Everything the run wrote is searched: params, tags, metrics' names, every artifact's text."""
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear", "++tracking.tags.db_password=hunter2")
    overrides = ["++tracking.tags.db_password=hunter2", "tracking.registry_uri=http://bob:hunter2@registry:5000"]
    result = run(cfg, overrides, tmp_path / "out")
    client = MlflowClient(store)
    found = client.get_run(result.run_id)
    assert found.data.tags["db_password"] == "***"
    assert found.data.params["tracking.tags.db_password"] == "***"
    assert "bob:***@registry" in found.data.tags["mlproj.overrides"]
    written = json.dumps([found.data.params, found.data.tags, list(found.data.metrics)])
    local = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(tmp_path / "artifacts")))
    written += "".join(p.read_text(errors="ignore") for p in local.rglob("*") if p.is_file())
    assert "hunter2" not in written
