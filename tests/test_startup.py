"""Start-up pays only for what it uses: a config refused by the checks imports no MLflow, pandas, scikit-learn,
Lightning or torch, so it answers in about the time of `--help` (a fresh interpreter each: `sys.modules` of
this test process already holds them all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ["mlflow", "pandas", "sklearn", "pytorch_lightning", "lightning_fabric", "torch", "torchmetrics", "matplotlib"]

PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["mlproj", *args]
from mlproj.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def imports_after(tmp_path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip(), out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["trainer.max_epochs=-1"],
        ["data=csv"],  # data.path is required
        ["++registry.thresholds.test_r2=high"],
        ["tracking.experiment= "],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_refused_config_imports_nothing_heavy(tmp_path, args):
    found = imports_after(tmp_path, *args)
    assert found == {"code": 2, "loaded": []}


@pytest.mark.slow
def test_help_imports_nothing_heavy(tmp_path):
    assert imports_after(tmp_path, "--help") == {"code": 0, "loaded": []}
