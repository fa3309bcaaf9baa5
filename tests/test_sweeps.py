"""Multiruns: parallel jobs on one store, one device per job, and what is refused."""

from __future__ import annotations

import pytest

from mlproj.sweeps.runs import device_for_job
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "job,gpus,devices,accelerator,expected",
    [
        (0, 4, "auto", "auto", [0]),
        (5, 4, 1, "gpu", [1]),
        (3, 1, "auto", "auto", None),  # one GPU: nothing to spread
        (3, 0, "auto", "auto", None),
        (2, 4, [3], "gpu", None),  # the user chose
        (2, 4, "auto", "cpu", None),
    ],
)
def test_each_parallel_job_gets_its_own_gpu(job, gpus, devices, accelerator, expected):
    assert device_for_job(job, gpus, devices, accelerator) == expected


@pytest.mark.slow
def test_multi_device_training_inside_a_multirun_is_refused_before_anything(tmp_path):
    out = run_cli("-m", "model=linear,mlp", "trainer.devices=2", "debug=quick", cwd=tmp_path)
    assert out.returncode == 2
    assert "trainer.devices=2 inside a multirun (-m) is not supported" in out.stderr
    assert "hydra/launcher=joblib" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()
