"""The benchmark script runs and ends with its JSON line (numbers are recorded under benchmarks/, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_prints_the_ratios(tmp_path):
    command = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--rows", "3000", "--epochs", "1"]
    command += ["--repeat", "2"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ratios = {"mlproj_vs_raw", "mlproj_vs_lightning_dataloader", "mlproj_vs_lightning_dataloader_log50"}
    assert ratios | {"samples_per_s", "cpu_ratios", "ratio_ranges", "epoch_ms", "commit", "load", "command"} <= set(
        result
    )
    assert set(result["cpu_ratios"]) == ratios and all(v > 0 for v in result["samples_per_s"].values())
    # the epoch's parts and the rest add up to the epoch
    parts = result["epoch_ms"]
    assert {"training steps", "checkpoint save", "MLflow logging", "metric compute"} <= set(parts)
    assert abs(sum(v for k, v in parts.items() if k != "epoch") - parts["epoch"]) < 0.01 * parts["epoch"] + 0.1
    assert "samples/s (wall)" in out.stdout and "cpu " in out.stdout and "fewer than 5" in out.stdout
