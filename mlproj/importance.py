"""Permutation feature importance of a table run: how much the test split's main metric worsens when one raw
column's values are shuffled across rows. Logged as a plot and a CSV table beside the run's other plots.

By hand rather than scikit-learn's `permutation_importance`: that one needs a fitted scikit-learn estimator and
scorer, while what is measured here is the packaged predictor (raw rows, strings and gaps, through the fitted
preprocessing) scored by the run's own torchmetrics code (`mlproj.scores`): the same model and metric users see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlproj import metrics
from mlproj.metrics import CLASSIFICATION, REGRESSION
from mlproj.scores import probability_columns, score

PROBABILITIES_PARAM = "probabilities"  # packaging.predictors' (a layer above: it calls this module)
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
    (positive: the model needs the column)."""
    name = metrics.main_metric(kind)
    higher = metrics.spec_of(name, kind).higher_is_better
    base = _metric(predictor, raw, y, kind, labels, name)
    rng = np.random.default_rng(seed)
    rows = []
    for column in raw.columns:
        losses = []
        for _ in range(repeats):
            shuffled = raw.copy()
            shuffled[column] = raw[column].to_numpy()[rng.permutation(len(raw))]
            value = _metric(predictor, shuffled, y, kind, labels, name)
            losses.append(base - value if higher else value - base)
        rows.append({"feature": str(column), "importance": float(np.mean(losses)), "std": float(np.std(losses))})
    table = pd.DataFrame(rows, columns=["feature", "importance", "std"])
    return table.sort_values("importance", ascending=False, ignore_index=True)


def _metric(predictor: Any, raw: pd.DataFrame, y: pd.Series, kind: str, labels: list[Any], name: str) -> float:
    if kind == REGRESSION:
        prediction = predictor.predict(raw)["prediction"].to_numpy(dtype=float)
        return score(kind, labels, y, prediction, None, "test")[name]
    predictions = predictor.predict(raw, params={PROBABILITIES_PARAM: True})
    return score(
        kind, labels, y, predictions["prediction"].to_numpy(), probability_columns(predictions, labels), "test"
    )[name]


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
