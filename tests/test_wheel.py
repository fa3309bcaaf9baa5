"""A non-editable install carries its configs: `python -m mlproj` works from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_wheel_ships_conf_and_runs_from_elsewhere(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mlproj-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlproj/conf/config.yaml" in names and "mlproj/conf/data/csv.yaml" in names
    assert "mlproj/packaging/pyfunc.py" in names and "mlproj/conf/data/common/table.yaml" in names

    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first on the path, ahead of the editable checkout.
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("MLFLOW_TRACKING_URI", None)
    where = subprocess.run(
        [sys.executable, "-c", "import mlproj.config.schema as c; print(c.__file__); print(c.config_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    module, conf = where.stdout.split()
    assert module.startswith(str(target)) and conf == str(target / "mlproj" / "conf")
    out = subprocess.run(
        [sys.executable, "-m", "mlproj", "debug=quick", "model=linear"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "FINISHED" in out.stdout and (elsewhere / "mlflow.db").exists()
