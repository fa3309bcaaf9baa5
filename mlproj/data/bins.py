"""Quantile bin edges of a table's numeric features, for piecewise-linear embeddings (Gorishniy et al. 2022).

Computed on the training split's preprocessed numeric columns and handed to a network that takes `bins`
(mlproj.models.embeddings): they become part of its packaged recipe, plain JSON, so the packaged model needs no
other state. Quantile edges make the encoding depend on a value's rank, as a tree's splits do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 16  # at most; fewer where a column has fewer distinct values


def quantile_edges(x: np.ndarray, bins: int = BINS) -> list[list[float]]:
    """Per column: the distinct quantiles 0, 1/bins, ..., 1 of its values (at least two edges)."""
    edges = []
    for column in np.asarray(x, dtype=np.float64).T:
        points = np.unique(np.quantile(column, np.linspace(0.0, 1.0, bins + 1)))
        if len(points) < 2:  # a constant column: one bin around its value
            points = np.array([points[0] - 1.0, points[0] + 1.0])
        edges.append([float(round(p, 6)) for p in points])
    return edges


def table_edges(prepared: Any) -> list[list[float]]:
    """The edges of mlproj's prepared table (its numeric columns lead the features); none for other data."""
    pre = getattr(prepared, "pre", None)
    numeric = len(getattr(pre, "numeric", None) or [])
    if not numeric or not hasattr(pre, "cardinalities"):
        return []
    return quantile_edges(prepared.splits["train"].x[:, :numeric])
