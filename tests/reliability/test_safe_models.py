"""Logged models hold no pickle; damaged or tampered artifacts fail with a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from mlproj.packaging import pyfunc as packaging
from mlproj.train import run
from tests.conftest import QUICK
from tests.test_packaging import small_model

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:100]), "damaged"),
        (lambda p: (p / "model.safetensors").write_bytes(b"\x00" * 64), "damaged"),
        (lambda p: (p / "mlproj.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "mlproj.json").unlink(), "missing"),
    ],
)
def test_damaged_artifacts_fail_clearly(tmp_path, damage, message):
    path, _, _ = small_model(tmp_path)
    damage(path)
    with pytest.raises(packaging.ModelLoadError, match=message):
        packaging.load(path)


def test_mismatched_weights_fail_clearly(tmp_path):
    path, _, _ = small_model(tmp_path)
    from safetensors.torch import save_file

    save_file({"0.weight": torch.zeros(2, 2)}, str(path / "model.safetensors"))
    with pytest.raises(packaging.ModelLoadError, match="does not match the model"):
        packaging.load(path)


@pytest.mark.slow
def test_logged_model_holds_no_pickle_and_loads_without_mlproj_installed(make_cfg, store, tmp_path):
    result = run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear"), [], tmp_path / "out")
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "dl")))
    files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt", ".pth", ".ckpt"))], files
    assert "code/mlproj/packaging/pyfunc.py" in files
    mlmodel = (local / "MLmodel").read_text()
    assert "loader_module: mlproj.packaging.pyfunc" in mlmodel
    requirements = (local / "requirements.txt").read_text()
    assert "torch==" in requirements and "mlflow==" in requirements

    # A fresh interpreter that cannot import the installed mlproj still loads and predicts.
    script = f"""
import sys
import os
sys.path = [p for p in sys.path if os.path.realpath(p or ".") != {str(REPO)!r}]
import importlib.util
spec = importlib.util.find_spec("mlproj")  # at most the editable install's namespace stub of conf/
assert spec is None or spec.origin is None, spec
import mlflow
from sklearn.datasets import load_diabetes
model = mlflow.pyfunc.load_model({str(local)!r})
import mlproj
assert mlproj.__file__.startswith({str(local)!r}), mlproj.__file__
print(model.predict(load_diabetes(as_frame=True).data.head(3))["prediction"].round(3).tolist())
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    predicted = eval(out.stdout.strip().splitlines()[-1])
    assert len(predicted) == 3 and all(np.isfinite(predicted))
