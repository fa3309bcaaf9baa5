"""Imbalanced classes: class weights for the built-in loss, and a binary decision threshold chosen on validation.

Defaults (`task.class_weight=auto`, `task.threshold=auto`) act only when the classes are imbalanced (the rarest
has fewer than half the training rows of the most frequent). Two classes: the loss stays unweighted and the
threshold on P(positive) maximises the minority class's F1 on the validation split (measured in
benchmarks/2026-11-30-imbalance.md: balanced weights alone halve the minority F1 of a 3% table, and add nothing
to the threshold). More classes (no threshold): the loss is weighted `balanced` (scikit-learn's rule,
n / (k * n_c)). Monitoring val_f1 or val_accuracy chooses the threshold for that metric on any table. The
threshold travels in the packaged model; probabilities are never changed by it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlproj.errors import ConfigError

IMBALANCED_RATIO = 0.5  # rarest class / most frequent class below this: imbalanced
WEIGHT_CHOICES = ("auto", "balanced", "none")
GRID = np.linspace(0.02, 0.98, 97)  # candidate thresholds on P(positive)


def check(class_weight: Any, threshold: Any, num_classes: int | None = None) -> None:
    """task.class_weight and task.threshold, one line each when wrong (at startup, and as the task is built)."""
    if isinstance(class_weight, str) and class_weight not in WEIGHT_CHOICES:
        raise ConfigError(f"task.class_weight={class_weight!r}: choose one of {', '.join(WEIGHT_CHOICES)} or a list")
    if class_weight is not None and not isinstance(class_weight, str):
        weights = list(class_weight)
        if not weights or any(float(w) <= 0 for w in weights):
            raise ConfigError(f"task.class_weight={weights}: weights must be positive numbers, one per class")
        if num_classes and len(weights) != num_classes:
            raise ConfigError(
                f"task.class_weight has {len(weights)} weights; the data has {num_classes} classes (in label order)"
            )
    if isinstance(threshold, str) and threshold != "auto":
        raise ConfigError(f"task.threshold={threshold!r}: choose auto or a number between 0 and 1")
    if not isinstance(threshold, str) and threshold is not None and not 0 < float(threshold) < 1:
        raise ConfigError(f"task.threshold={threshold}: must be between 0 and 1 (exclusive), or auto")


def imbalanced(counts: list[int] | None) -> bool:
    present = [c for c in counts or [] if c > 0]
    return len(present) >= 2 and min(present) < IMBALANCED_RATIO * max(present)


def class_weights(spec: Any, counts: list[int] | None) -> list[float] | None:
    """Per-class loss weights (label order), or None for an unweighted loss."""
    if spec is None or spec == "none" or (spec == "auto" and (len(counts or []) <= 2 or not imbalanced(counts))):
        return None  # auto: two classes are left to the decision threshold
    if not isinstance(spec, str):
        return [float(w) for w in spec]
    if not counts or min(counts) == 0:
        return None  # counts unknown (a data module of yours): `balanced` needs them
    total, k = sum(counts), len(counts)
    return [total / (k * c) for c in counts]


def choose_threshold(probs: np.ndarray, y: np.ndarray, monitor: str, counts: list[int] | None) -> float:
    """The threshold on P(class 1) the run predicts with (see the module docstring for the rule)."""
    base = monitor.partition("_")[2]
    if base not in ("f1", "accuracy") and not imbalanced(counts):
        return 0.5
    predicted = probs[None, :] > GRID[:, None]  # (thresholds, rows)
    truth = y.astype(bool)[None, :]
    if base == "accuracy":
        scores = (predicted == truth).mean(axis=1)
    else:  # F1 of class 1 when monitoring f1 (what val_f1 measures); else of the minority class
        minority = 1 if base == "f1" or counts is None or counts[1] <= counts[0] else 0
        if minority == 0:
            predicted, truth = ~predicted, ~truth
        tp = (predicted & truth).sum(axis=1)
        scores = 2 * tp / np.maximum(predicted.sum(axis=1) + truth.sum(axis=1), 1)
    best = np.flatnonzero(scores == scores.max())
    return float(GRID[best[len(best) // 2]])  # the middle of a plateau of equal scores
