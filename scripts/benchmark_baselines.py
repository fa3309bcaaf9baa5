"""What the baseline and the permutation importance add to a table run, side by side in one process.

For each table: a whole run with `baseline=none` and `tracking.log_plots=false` (seconds), then, on the same
plan, the baseline's fit and scoring (hgb, linear) and the permutation importance over the packaged network,
each as seconds and as a share of the run. Usage: python scripts/benchmark_baselines.py [max_epochs]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from mlproj import baselines, importance
from mlproj.config.schema import config_dir
from mlproj.packaging.package import package_of
from mlproj.plan import build_task, make_plan

TABLES = ("diabetes", "wine", "breast_cancer", "digits")


def config(data: str, store: str, epochs: int):
    overrides = [f"data={data}", f"tracking.uri='{store}'", f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu"]
    overrides += ["trainer.progress_bar=none", "quiet=true", "baseline=none", "tracking.log_plots=false"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def main(epochs: int) -> None:
    from mlproj.train import run

    folder = Path(tempfile.mkdtemp(prefix="mlproj-bench-"))
    os.chdir(folder)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    print(f"{'table':<14} {'run s':>7} {'hgb s':>7} {'hgb %':>6} {'linear s':>8} {'importance s':>12} {'imp %':>6}")
    for data in TABLES:
        cfg = config(data, store, epochs)
        start = time.perf_counter()
        run(cfg, [], folder / data)
        whole = time.perf_counter() - start
        plan = make_plan(cfg)
        hgb = baselines.measure("hgb", plan, 0)["baseline_seconds"]
        linear = baselines.measure("linear", plan, 0)["baseline_seconds"]
        module, recipe = build_task(cfg, plan)
        package = package_of(plan, module, recipe)
        start = time.perf_counter()
        importance.figures(plan, package)
        imp = time.perf_counter() - start
        print(
            f"{data:<14} {whole:>7.2f} {hgb:>7.2f} {100 * hgb / whole:>5.1f}% {linear:>8.2f} {imp:>12.2f}"
            f" {100 * imp / whole:>5.1f}%",
            flush=True,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
