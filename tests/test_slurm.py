"""Sweeps through hydra-submitit-launcher: the SLURM preset composes, and submitit's local executor runs a
sweep end to end (the same launcher code path as SLURM, with jobs as local processes)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from mlproj.config.schema import config_dir
from tests.conftest import run_cli


def test_slurm_preset_composes():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1
    assert launcher.timeout_min == 240 and "export PYTHONUNBUFFERED=1" in launcher.setup


@pytest.mark.slow
def test_submitit_local_sweep_end_to_end(store, tmp_path):
    out = run_cli(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "debug=quick",
        "model=linear",
        f"tracking.uri='{store}'",
        "++registry.thresholds.test_r2=-100",
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Submitit 'local' sweep output dir" in out.stdout + out.stderr
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    roles = {r.data.tags.get("mlproj.sweep.role"): r for r in runs}
    assert len(runs) == 2 and set(roles) == {"parent", "trial"}
    parent, trial = roles["parent"], roles["trial"]
    assert parent.info.status == trial.info.status == "FINISHED"
    assert trial.data.tags["mlflow.parentRunId"] == parent.info.run_id  # the job process nested under it
    assert "test_rmse" in trial.data.metrics and "best_test_rmse" in parent.data.metrics
    (version,) = client.search_model_versions("name='mlproj-diabetes'")
    assert version.run_id == trial.info.run_id
