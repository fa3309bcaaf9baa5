"""The soak script, one run of each scenario: nothing left RUNNING, no orphan file, every exit code right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.serial
def test_soak_leaves_no_running_run_and_no_orphan_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--runs", "5", "--workdir", str(tmp_path / "soak")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and summary["ok"], json.dumps(summary, indent=1) + proc.stderr[-3000:]
    assert summary["running"] == 0 and summary["orphan_files"] == [] and summary["leaked_temp_dirs"] == []
    assert summary["statuses"] == {"FINISHED": 2, "FAILED": 2}
