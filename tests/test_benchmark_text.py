"""The text benchmark runs on the real table it names (shipped by a dev dependency) and ends with its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_text_benchmark_compares_with_tfidf_on_the_packaged_sms_table(tmp_path):
    command = [sys.executable, str(REPO / "scripts" / "benchmark_text.py"), "--quick", "--models", "embedding_bag"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["test_accuracy"]) == {"tfidf_logreg", "embedding_bag"}
    assert result["test_accuracy"]["tfidf_logreg"] > 0.9  # a real table: spam is easy for the baseline
    assert 0.5 < result["test_accuracy"]["embedding_bag"] <= 1.0 and "embedding_bag_minus_tfidf_points" in result
    assert result["throughput"]["raw"] > 0 and result["throughput"]["mlproj"] > 0
    assert "SMS Spam Collection (4862 rows" in out.stdout
