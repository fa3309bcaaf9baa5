"""Fitted preprocessing whose whole state is plain JSON.

Numeric columns: median imputation, then standardisation. String/categorical/bool columns: one-hot over
the most frequent training values plus an "other" slot (rare or unseen values) and a "missing" slot.
Written by hand rather than with a scikit-learn ColumnTransformer because its fitted state would have to be
pickled into the model artifact; this state is a JSON document that the packaged model rebuilds without
running any stored code. Everything is fitted on the training split only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlproj.errors import InputError
from mlproj.metrics import CLASSIFICATION, REGRESSION

log = logging.getLogger(__name__)

MAX_AUTO_CLASSES = 20  # an integer-valued target with at most this many values is a class label


@dataclass
class NumericColumn:
    name: str
    fill: float
    mean: float
    std: float


@dataclass
class CategoricalColumn:
    name: str
    categories: list[str]  # one slot each, then an "other" slot and a "missing" slot


@dataclass
class Preprocessor:
    task: str
    numeric: list[NumericColumn] = field(default_factory=list)
    categorical: list[CategoricalColumn] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is not used
    labels: list[Any] = field(default_factory=list)  # classification: original label values, by index
    target_mean: float = 0.0  # regression: the model learns (y - mean) / std
    target_std: float = 1.0
    threshold: float | None = None  # two classes: predict labels[1] when P(labels[1]) > this (None: 0.5)

    # --- fitting ------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        features: pd.DataFrame,
        target: pd.Series,
        task: str,
        max_categories: int = 50,
        id_unique_ratio: float = 0.9,
        drop_constant: bool = True,
        scale: bool = True,
        drop: dict[str, str] | None = None,
    ) -> Preprocessor:
        """`drop`: columns decided against before the split (mlproj.data.hygiene: row indices), with why."""
        pre = cls(task=task)
        rows = len(features)
        for name in features.columns:
            col = features[name]
            key = str(name)
            if key in (drop or {}):
                pre.dropped[key] = (drop or {})[key]
            elif col.isna().all():
                pre.dropped[key] = "all values missing"
            elif _is_numeric(col):
                values = col.astype("float64")
                constant = values.nunique(dropna=True) <= 1
                if constant and drop_constant:
                    pre.dropped[key] = "constant"
                    continue
                mean, std = float(values.mean()), float(values.std(ddof=0))
                if not scale or constant:  # kept as they are (a constant would divide by zero)
                    mean, std = 0.0, 1.0
                pre.numeric.append(NumericColumn(key, float(values.median()), mean, std))
            else:
                strings = col.dropna().astype(str)
                counts = strings.value_counts()
                if len(counts) <= 1:
                    pre.dropped[key] = "constant"
                elif len(counts) > max_categories and len(counts) >= id_unique_ratio * rows:
                    pre.dropped[key] = f"ID-like: {len(counts)} distinct values in {rows} rows"
                else:
                    pre.categorical.append(CategoricalColumn(key, list(counts.index[:max_categories])))
        for key, why in pre.dropped.items():
            log.warning("column %r is not used as a feature (%s)", key, why)
        if not pre.numeric and not pre.categorical:
            raise InputError("no usable feature columns remain after preprocessing: " + str(pre.dropped))
        if task == REGRESSION:
            y = target.astype("float64")
            pre.target_mean = float(y.mean())
            pre.target_std = float(y.std(ddof=0)) or 1.0
        else:
            pre.labels = [_plain(v) for v in sorted(target.unique(), key=_label_sort_key)]
        return pre

    # --- applying -----------------------------------------------------------------------------------

    @property
    def input_columns(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def num_features(self) -> int:
        return len(self.numeric) + sum(len(c.categories) + 2 for c in self.categorical)

    @property
    def num_outputs(self) -> int:
        if self.task == REGRESSION:
            return 1
        return 1 if len(self.labels) == 2 else len(self.labels)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise InputError(f"input is missing columns {missing}; expected columns: {self.input_columns}")
        blocks: list[np.ndarray] = []
        if self.numeric:
            num = np.empty((len(frame), len(self.numeric)), dtype=np.float64)
            for j, col in enumerate(self.numeric):
                values = _to_float(frame[col.name], col.name)
                values = np.where(np.isnan(values), col.fill, values)
                num[:, j] = (values - col.mean) / (col.std or 1.0)
            blocks.append(num)
        for col in self.categorical:
            raw = frame[col.name]
            codes = pd.Categorical(raw.astype(str), categories=col.categories).codes.astype(np.int64)
            codes = np.where(codes < 0, len(col.categories), codes)  # rare or unseen -> "other"
            codes = np.where(raw.isna().to_numpy(), len(col.categories) + 1, codes)  # -> "missing"
            onehot = np.zeros((len(frame), len(col.categories) + 2), dtype=np.float64)
            onehot[np.arange(len(frame)), codes] = 1.0
            blocks.append(onehot)
        return np.hstack(blocks).astype(np.float32)

    def encode_target(self, target: pd.Series) -> np.ndarray:
        if self.task == REGRESSION:
            return ((target.astype("float64").to_numpy() - self.target_mean) / self.target_std).astype(np.float32)
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[_plain(v)] for v in target], dtype=np.int64)

    def decode_regression(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.target_std + self.target_mean

    # --- serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        state = dict(state)
        state["numeric"] = [NumericColumn(**c) for c in state.get("numeric", [])]
        state["categorical"] = [CategoricalColumn(**c) for c in state.get("categorical", [])]
        return cls(**state)


def infer_task(target: pd.Series) -> str:
    """Strings, booleans and integer-valued columns with few values are labels; the rest is regression."""
    if not _is_numeric(target):
        return CLASSIFICATION
    values = target.dropna().astype("float64")
    if (values == values.round()).all() and values.nunique() <= MAX_AUTO_CLASSES:
        return CLASSIFICATION
    return REGRESSION


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _to_float(col: pd.Series, name: str) -> np.ndarray:
    if _is_numeric(col):
        return col.astype("float64").to_numpy()
    parsed = pd.to_numeric(col, errors="coerce")
    bad = parsed.isna() & col.notna()
    if bad.any():
        example = col[bad].iloc[0]
        raise InputError(f"column {name!r} must be numeric; got {example!r} ({int(bad.sum())} such rows)")
    return parsed.astype("float64").to_numpy()


def _plain(value: Any) -> Any:
    """numpy scalars -> JSON-friendly Python values."""
    return value.item() if isinstance(value, np.generic) else value


def _label_sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float | np.number) else (1, str(value))
