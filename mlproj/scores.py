"""Metrics of predictions made outside the training loop (a file given to mlproj.evaluate, a scikit-learn baseline,
a permuted column), computed by the same torchmetrics objects as training (`metrics.build_metrics`), so
`baseline_test_rmse` or an evaluation's `test_rmse` mean exactly what the run's `test_rmse` means."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlproj.metrics import REGRESSION, build_metrics


def score(
    kind: str,
    labels: list[Any],
    y_true: pd.Series,
    prediction: np.ndarray,
    probabilities: np.ndarray | None,
    stage: str,
    threshold: float | None = None,
) -> dict[str, float]:
    """{`{stage}_{metric}`: value}. Regression: `prediction` in the target's units. Classification: `probabilities`
    (rows x classes, in `labels` order) and the true labels; the loss is the network's alone (not computed).
    `threshold`: two classes, the model's decision threshold (as the run's test metrics use it); and
    `{stage}_missed_classes`: classes present but never in `prediction`, as the run logs it."""
    import torch

    if kind == REGRESSION:
        collection = local(build_metrics(REGRESSION, 0, stage))
        truth = torch.tensor(y_true.to_numpy(dtype=np.float64, copy=True), dtype=torch.float32)
        collection.update(torch.tensor(np.asarray(prediction, dtype=np.float64), dtype=torch.float32), truth)
        return {k: float(v) for k, v in collection.compute().items()}
    index = {_key(label): i for i, label in enumerate(labels)}
    known = y_true.map(lambda v: index.get(_key(v), -1)).to_numpy()
    if (known < 0).any():
        unknown = sorted({str(v) for v, i in zip(y_true, known, strict=True) if i < 0})[:5]
        raise ValueError(f"labels the model does not know: {unknown}; it knows {[str(x) for x in labels][:10]}")
    probs = torch.tensor(np.asarray(probabilities, dtype=np.float32))
    collection = local(build_metrics(kind, len(labels), stage))
    if threshold is not None and len(labels) == 2:  # as SupervisedTask sets it for its test metrics
        for metric in collection.values():
            if hasattr(metric, "threshold") and isinstance(metric.threshold, float):
                metric.threshold = threshold
    # As the task feeds them: binary metrics take P(second class), multiclass ones the rows of probabilities.
    collection.update(probs[:, 1] if len(labels) == 2 else probs, torch.tensor(known))
    values = {k: float(v) for k, v in collection.compute().items()}
    predicted = {_key(v) for v in np.asarray(prediction, dtype=object)}
    present = {_key(v) for v in y_true}
    values[f"{stage}_missed_classes"] = float(len(present - predicted))
    return values


def local(collection: Any) -> Any:
    """Computed on this process's rows alone: under DDP rank 0 scores a baseline or a permuted column by itself,
    and torchmetrics' default sync would wait at a barrier for ranks that are not scoring."""
    for metric in collection.values():  # the `distributed_available_fn` constructor argument, set after building
        metric.distributed_available_fn = _not_distributed
    return collection


def _not_distributed() -> bool:
    return False


def _key(value: Any) -> str:
    """A label compared as text: a CSV reads `1` where training saw 1.0 or "1"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def probability_columns(predictions: pd.DataFrame, labels: list[Any]) -> np.ndarray:
    """The packaged model's `probability_<label>` columns, in label order."""
    return predictions[[f"probability_{label}" for label in labels]].to_numpy(dtype=np.float32)
