"""PNG artifacts where people would rather look than read: learning curves and test-split diagnostics.

matplotlib rather than `mlflow.models.evaluate`: the evaluator re-predicts through pyfunc and pulls in
optional heavy dependencies (SHAP) for plots these few lines draw from predictions already at hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlproj.metrics import REGRESSION


def figures(
    task: str,
    history: dict[str, list[tuple[int, float]]],
    y_true: pd.Series | None,
    predictions: pd.DataFrame | None,
    labels: list[Any],
) -> dict[str, Any]:
    """{artifact path: matplotlib Figure}."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed
    out = {"plots/learning_curves.png": _learning_curves(history)}
    if predictions is None:  # a run without test predictions of its own (a task or data module of yours)
        return out
    if task == REGRESSION:
        out.update(_regression(y_true.to_numpy(dtype=float), predictions["prediction"].to_numpy(dtype=float)))
    else:
        out.update(_classification(y_true, predictions, labels))
    return out


def _learning_curves(history: dict[str, list[tuple[int, float]]]) -> Any:
    """One panel per metric (loss first), train and val together: each on its own scale."""
    import matplotlib.pyplot as plt

    bases = sorted({k.split("_", 1)[1] for k in history}, key=lambda b: (b != "loss", b))
    cols = min(3, len(bases)) or 1
    rows = -(-len(bases) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, base in zip(axes.flat, bases, strict=False):
        for stage in ("train", "val"):
            series = history.get(f"{stage}_{base}")
            if series:
                steps, values = zip(*series, strict=True)
                ax.plot(steps, values, label=stage, marker="." if len(steps) < 30 else None)
        ax.set(title=base, xlabel="epoch")
        ax.legend()
    for ax in list(axes.flat)[len(bases) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _regression(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    fig1, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y, pred, s=10, alpha=0.6)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", linestyle="--", label="perfect")
    ax.set(title="test: predicted vs actual", xlabel="actual", ylabel="predicted")
    ax.legend()
    fig1.tight_layout()

    residuals = y - pred
    fig2, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(pred, residuals, s=10, alpha=0.6)
    left.axhline(0, color="grey", linestyle="--")
    left.set(title="test: residuals vs predicted", xlabel="predicted", ylabel="actual - predicted")
    right.hist(residuals, bins=30)
    right.set(title="residual distribution", xlabel="actual - predicted")
    fig2.tight_layout()
    return {"plots/predicted_vs_actual.png": fig1, "plots/residuals.png": fig2}


def _classification(y_true: pd.Series, predictions: pd.DataFrame, labels: list[Any]) -> dict[str, Any]:
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    names = [str(label) for label in labels]
    truth = y_true.astype(str).to_numpy()
    fig1, ax = plt.subplots(figsize=(5 + 0.3 * len(names), 4.5 + 0.3 * len(names)))
    ConfusionMatrixDisplay.from_predictions(
        truth, predictions["prediction"].astype(str).to_numpy(), labels=names, ax=ax, colorbar=False
    )
    ax.set_title("test: confusion matrix")
    fig1.tight_layout()

    # One-vs-rest curves: the positive class alone for binary, every class for multiclass.
    shown = names[1:] if len(names) == 2 else names
    fig2, roc = plt.subplots(figsize=(5.5, 5))
    fig3, pr = plt.subplots(figsize=(5.5, 5))
    for name in shown:
        score = predictions[f"probability_{name}"].to_numpy()
        RocCurveDisplay.from_predictions(truth == name, score, name=name, ax=roc)
        PrecisionRecallDisplay.from_predictions(truth == name, score, name=name, ax=pr)
    roc.set_title("test: ROC (one vs rest)")
    pr.set_title("test: precision-recall (one vs rest)")
    fig2.tight_layout()
    fig3.tight_layout()
    return {"plots/confusion_matrix.png": fig1, "plots/roc_curve.png": fig2, "plots/precision_recall.png": fig3}


def log_plots(client: Any, run_id: str, figs: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    for path, fig in figs.items():
        if isinstance(fig, pd.DataFrame):  # a table among the plots (permutation importance): CSV
            client.log_text(run_id, fig.to_csv(index=False), path)
            continue
        client.log_figure(run_id, fig, path)
        plt.close(fig)


def image_grid(pixels: np.ndarray, y_true: pd.Series, y_pred: pd.Series, limit: int = 36) -> Any:
    """Test images (uint8 N x C x H x W, as the network sees them before normalising) with predicted / true
    labels, mistakes first (in red): what the confusion matrix counts, shown."""
    import matplotlib.pyplot as plt

    truth, pred = y_true.astype(str).to_numpy(), pd.Series(y_pred).astype(str).to_numpy()
    order = np.argsort(truth == pred, kind="stable")[:limit]  # wrong ones first, then in test order
    cols = min(6, max(1, len(order)))
    rows = max(1, -(-len(order) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order, strict=False):
        image = pixels[i]
        ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{pred[i]} / {truth[i]}", fontsize=8, color="black" if pred[i] == truth[i] else "red")
    fig.suptitle("test: predicted / true", fontsize=9)
    fig.tight_layout()
    return fig
