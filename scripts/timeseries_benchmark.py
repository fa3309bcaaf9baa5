"""Forecast quality on a real monthly series shipped inside a package: statsmodels' El Nino sea-surface
temperatures (1950-2010, 732 months; nothing is downloaded). The last 24 months are the test part.

Writes the series as a CSV, scores the baselines on exactly the test windows mlproj builds (seasonal naive,
naive, a ridge regression over the same lags), then trains mlproj's models through the command line and reads
their test metrics back from MLflow. Prints a Markdown table (recorded in benchmarks/).

    python scripts/timeseries_benchmark.py --out /tmp/tsbench [--models mlp gru tcn] [--epochs 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

SETTINGS = {"horizon": 12, "window": 36, "season": 12, "val_size": 24, "test_size": 24}


def write_series(folder: Path) -> Path:
    import statsmodels.api as sm

    wide = sm.datasets.elnino.load_pandas().data  # one row per year, one column per month
    values = wide.drop(columns=["YEAR"]).to_numpy().ravel()
    months = pd.date_range(f"{int(wide['YEAR'].iloc[0])}-01-01", periods=len(values), freq="MS")
    path = folder / "elnino.csv"
    pd.DataFrame({"month": months, "temperature": values}).to_csv(path, index=False)
    return path


def baselines(path: Path) -> dict[str, dict[str, float]]:
    """Test MAE and MASE of the simple forecasts on mlproj's own test windows (the same origins and scale)."""
    from sklearn.linear_model import Ridge

    from mlproj.data.timeseries import TimeSeriesFile

    data = TimeSeriesFile(path=str(path), time="month", target="temperature", **SETTINGS).prepare()
    (part,) = data.parts
    y, h, w, m = part.values[:, 0], SETTINGS["horizon"], SETTINGS["window"], SETTINGS["season"]
    origins = range(part.val_end, len(y) - h + 1)
    actual = np.stack([y[o : o + h] for o in origins])
    steps = np.arange(h)
    forecasts = {
        "seasonal naive": np.stack([y[o - m + steps % m] for o in origins]),
        "naive (last value)": np.stack([np.full(h, y[o - 1]) for o in origins]),
    }
    x_train, y_train = data.splits["train"]
    ridge = Ridge(alpha=1.0).fit(x_train, y_train)
    forecasts[f"ridge over {w} lags"] = data.layout.unscale_target(ridge.predict(data.splits["test"][0]))
    return {
        name: {"mae": float(np.abs(f - actual).mean()), "mase": float(np.abs(f - actual).mean() / data.mase_scale)}
        for name, f in forecasts.items()
    }


def command(path: Path, store: str, model: str, epochs: int) -> list[str]:
    args = ["data=timeseries", f"data.path={path}", "data.time=month", "data.target=temperature"]
    args += [f"data.{k}={v}" for k, v in SETTINGS.items()]
    args += [f"model={model}", f"trainer.max_epochs={epochs}", "trainer.accelerator=cpu", "trainer.devices=1"]
    return [sys.executable, "-m", "mlproj", *args, f"tracking.uri={store}", "trainer.progress_bar=none", "quiet=true"]


def train(path: Path, folder: Path, model: str, epochs: int) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{folder / 'mlflow.db'}"
    args = command(path, store, model, epochs)
    print("$ python", " ".join(args[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(args, cwd=folder, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    client = MlflowClient(store)
    run = client.search_runs([client.get_experiment_by_name(f"mlproj-{path.stem}").experiment_id], max_results=1)[0]
    return {"mae": run.data.metrics["test_mae"], "mase": run.data.metrics["test_mase"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=["mlp", "gru", "tcn"])
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = write_series(args.out)
    rows = baselines(path)
    naive = rows["seasonal naive"]["mae"]
    for model in args.models:
        rows[f"mlproj model={model}"] = train(path, args.out, model, args.epochs)
    print("\n| forecast | test MAE (deg C) | test MASE | MAE / seasonal naive's | train+test time |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        took = f"{r['seconds']:.0f} s" if "seconds" in r else "-"
        print(f"| {name} | {r['mae']:.3f} | {r['mase']:.3f} | {r['mae'] / naive:.3f} | {took} |")


if __name__ == "__main__":
    main()
