"""The tables benchmark runs on a real table a dev dependency ships, on mlproj's own split, in-process."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_tables", REPO / "scripts" / "benchmark_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_benchmark_scores_mlproj_and_baselines_on_the_same_split(tmp_path):
    bench = load_script()
    csv, target = bench.table_csv("hpc", tmp_path)
    prepared = bench.prepared_of(csv, target)
    assert prepared.task == "classification" and len(prepared.table.target) == 4331
    rare = bench.rarest(prepared)
    assert rare == prepared.splits["train"].raw_target.value_counts().idxmin()
    rows = bench.baselines(prepared, rare)
    assert set(rows) == {"hgb", "linear"} and rows["hgb"]["accuracy"] > rows["linear"]["accuracy"] > 0.5
    rows["mlproj mlp"] = bench.mlproj_run(csv, target, "mlp", 1, tmp_path, prepared, rare)
    assert 0.4 < rows["mlproj mlp"]["accuracy"] <= 1.0 and rows["mlproj mlp"]["seconds"] > 0
    slower = bench.step_speed(prepared, ["mlp", "resnet_mlp_piecewise"], steps=3, rounds=1)
    assert slower["mlp"] == 1.0 and slower["resnet_mlp_piecewise"] > 0
    table = bench.markdown([{"table": "hpc", "task": "classification", "method": m, **r} for m, r in rows.items()])
    assert "| hpc | hgb |" in table and "+0.0" in table and len(table.splitlines()) == 5
