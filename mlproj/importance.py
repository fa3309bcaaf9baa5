"""Permutation feature importance of a table run: how much the test split's main metric worsens when one raw
column's values are shuffled across rows. Logged as a plot and a CSV table beside the run's other plots.

By hand rather than scikit-learn's `permutation_importance`: that one needs a fitted scikit-learn estimator and
scorer, while what is measured here is the packaged predictor (raw rows, strings and gaps, through the fitted
preprocessing) on the run's main metric (test_rmse, test_accuracy): the same model and metric users see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlproj import metrics
from mlproj.metrics import CLASSIFICATION, REGRESSION
from mlproj.scores import _key

REPEATS = 5  # shuffles per column (their spread is the table's std)
PLOT, TABLE = "plots/permutation_importance.png", "plots/permutation_importance.csv"


def figures(plan: Any, package: Any, seed: int = 0) -> dict[str, Any]:
    """{PLOT: figure, TABLE: frame} for mlproj's raw-row tables with the built-in task; {} otherwise."""
    if (
        not plan.builtin
        or package.pre is None
        or plan.prepared is None
        or plan.kind not in (REGRESSION, CLASSIFICATION)
    ):
        return {}
    test = plan.prepared.splits["test"]
    if len(test.raw) < 2 or plan.targets != 1:
        return {}
    table = permutation_importance(package.predictor(), test.raw, test.raw_target, plan.kind, package.labels, seed)
    return {PLOT: plot(table, metrics.main_metric(plan.kind)), TABLE: table}


def permutation_importance(
    predictor: Any, raw: pd.DataFrame, y: pd.Series, kind: str, labels: list[Any], seed: int, repeats: int = REPEATS
) -> pd.DataFrame:
    """One row per raw column: the mean and std over `repeats` shuffles of how much the main metric worsened
    (positive: the model needs the column). One predict call per column: its shuffles stacked."""
    name = metrics.main_metric(kind)
    base = _metric(predictor, raw, y, kind, labels, 1)[0]
    rng = np.random.default_rng(seed)
    stacked = pd.concat([raw] * repeats, ignore_index=True)
    rows = []
    for column in raw.columns:
        shuffled = stacked.copy()
        values = raw[column].to_numpy()
        shuffled[column] = np.concatenate([values[rng.permutation(len(raw))] for _ in range(repeats)])
        worse = _metric(predictor, shuffled, y, kind, labels, repeats)
        losses = worse - base if name.endswith("rmse") else base - worse  # rmse: lower is better; accuracy: higher
        rows.append({"feature": str(column), "importance": float(losses.mean()), "std": float(losses.std())})
    table = pd.DataFrame(rows, columns=["feature", "importance", "std"])
    return table.sort_values("importance", ascending=False, ignore_index=True)


def _metric(predictor: Any, raw: pd.DataFrame, y: pd.Series, kind: str, labels: list[Any], repeats: int) -> np.ndarray:
    """The main metric (test_rmse / test_accuracy: their definitions, in numpy) of each of `repeats` stacked
    copies of the rows. The training's torchmetrics objects would cost more than the predictions here."""
    predicted = np.asarray(predictor.predict(raw)["prediction"]).reshape(repeats, len(y))
    if kind == REGRESSION:
        errors = predicted.astype(float) - y.to_numpy(dtype=float)
        return np.sqrt((errors**2).mean(axis=1))
    as_text = np.vectorize(_key, otypes=[object])  # labels compared as scores.score compares them
    return (as_text(predicted) == as_text(y.to_numpy())).mean(axis=1)


def plot(table: pd.DataFrame, metric: str, limit: int = 30) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = table.head(limit).iloc[::-1]  # the most important on top
    fig, ax = plt.subplots(figsize=(6.5, 1.5 + 0.3 * len(shown)))
    ax.barh(shown["feature"], shown["importance"], xerr=shown["std"], color="tab:blue")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"{metric} worse by (shuffled column, test split)")
    ax.set_title("permutation feature importance")
    fig.tight_layout()
    return fig
