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
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {
        "mlproj_vs_raw",
        "mlproj_vs_lightning_dataloader",
        "mlproj_vs_lightning_dataloader_log50",
        "samples_per_s",
    }
    assert all(v > 0 for v in result["samples_per_s"].values())
    assert "samples/s" in out.stdout and "x raw" in out.stdout
