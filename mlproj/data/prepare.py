"""Split a raw table reproducibly, decide the task, and fit preprocessing on the training split only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlproj.config.schema import TaskKind
from mlproj.data import hygiene
from mlproj.data.preprocess import Preprocessor, infer_task
from mlproj.data.table import Table
from mlproj.errors import ConfigError, InputError
from mlproj.metrics import CLASSIFICATION

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    raw: pd.DataFrame  # the raw feature columns, as a user would send them to the packaged model
    raw_target: pd.Series
    x: np.ndarray  # float32 features after preprocessing
    y: np.ndarray  # float32 scaled regression target, or int64 class index


@dataclass
class PreparedData:
    table: Table
    task: str
    pre: Preprocessor
    splits: dict[str, Split]  # streaming: the sample's rows only (signature, input example, test plots)
    plan: Any = None  # streaming: the mlproj.data.streaming.ParquetPlan the loaders read

    @property
    def num_classes(self) -> int:
        return len(self.pre.labels)


def resolve_task(table: Table, cfg: Any) -> str:
    requested = TaskKind(cfg.task)
    if requested is not TaskKind.auto:
        return requested.value
    if table.task_hint is not TaskKind.auto:
        return table.task_hint.value
    task = infer_task(table.target)
    log.info("data.task inferred as %s from column %r (set data.task to override)", task, table.target.name)
    return task


def split_indices(table: Table, task: str, cfg: Any) -> dict[str, np.ndarray]:
    """Row indices of train/val/test, after the target is checked for the task: reproducible (cfg.split_seed),
    stratified for classification. Every source of raw rows splits this way (tables, text)."""
    if task == CLASSIFICATION:
        counts = table.target.value_counts()
        if len(counts) > max(50, len(table.target) // 2):
            raise ConfigError(
                f"data.target={table.target.name!r} has {len(counts)} distinct values in {len(table.target)} rows: "
                "an identifier, not a class label (a numeric target can be set data.task=regression)"
            )
        if len(counts) < 2:
            raise ConfigError(f"data.target={table.target.name!r} has a single class; classification needs two")
    elif not pd.api.types.is_numeric_dtype(table.target) or pd.api.types.is_bool_dtype(table.target):
        raise ConfigError(f"data.task=regression needs a numeric target; {table.target.name!r} is not numeric")
    n = len(table.target)
    if n < 10:
        raise ConfigError(f"data has {n} rows with a target; at least 10 are needed to split train/val/test")
    index = np.arange(n)
    holdout = cfg.val_fraction + cfg.test_fraction
    train_idx, rest_idx = _split(index, holdout, table.target, task, cfg.split_seed)
    val_idx, test_idx = _split(rest_idx, cfg.test_fraction / holdout, table.target.iloc[rest_idx], task, cfg.split_seed)
    return dict(zip(SPLITS, (train_idx, val_idx, test_idx), strict=True))


def clean(table: Table, task: str, cfg: Any) -> dict[str, str]:
    """The hygiene rules on the whole table (mlproj.data.hygiene): stray strings in numeric columns become
    missing (or refused: data.strict), rows dropped for a missing target are said; returns the row-index columns
    not to use, with why."""
    if table.dropped_target_rows:
        log.warning("%d rows dropped: their target %r is missing", table.dropped_target_rows, table.target.name)
    table.features = hygiene.parse_dirty_numbers(table.features, bool(getattr(cfg, "strict", False)))
    if task == CLASSIFICATION:
        hygiene.warn_rare_class(table.target)
    if not getattr(cfg, "drop_index_columns", True):
        return {}
    found = hygiene.index_columns(table.features, keep=list(getattr(cfg, "include", None) or []))
    return {k: f"{why}; data.drop_index_columns=false keeps it" for k, why in found.items()}


def prepare(table: Table, task: str, cfg: Any, parts: dict[str, np.ndarray] | None = None) -> PreparedData:
    """`parts`: given row indices per split (a cross-validation fold, mlproj.cv); default: split_indices."""
    index = clean(table, task, cfg)
    parts = parts if parts is not None else split_indices(table, task, cfg)
    train_idx, val_idx, test_idx = parts.values()
    train_x = table.features.iloc[train_idx]
    try:
        pre = Preprocessor.fit(
            train_x,
            table.target.iloc[train_idx],
            task,
            cfg.max_categories,
            cfg.id_unique_ratio,
            cfg.drop_constant,
            cfg.scale,
            drop=index,
        )
    except InputError as exc:
        raise ConfigError(f"data: {exc}") from exc
    unseen = set(map(_key, table.target.iloc[np.concatenate([val_idx, test_idx])])) - set(map(_key, pre.labels))
    if task == CLASSIFICATION and unseen:
        shown = sorted(unseen, key=str)[:10]
        raise ConfigError(f"{len(unseen)} classes occur only outside the training split, e.g. {shown}")
    splits = {}
    for name, idx in parts.items():
        raw = table.features.iloc[idx].reset_index(drop=True)
        target = table.target.iloc[idx].reset_index(drop=True)
        splits[name] = Split(raw, target, pre.transform(raw), pre.encode_target(target))
    return PreparedData(table, task, pre, splits)


def _split(index: np.ndarray, fraction: float, target: pd.Series, task: str, seed: int):
    stratify = target.to_numpy() if task == CLASSIFICATION else None
    if stratify is not None and target.value_counts().min() < 2:
        log.warning("a class has fewer than 2 rows; splitting without stratification")
        stratify = None
    try:
        return train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:
        # Too few rows per class for a stratified split of this size: fall back to a plain one.
        log.warning("stratified split impossible with these fractions; splitting without stratification")
        return train_test_split(index, test_size=fraction, random_state=seed)


def _key(value):
    return value.item() if isinstance(value, np.generic) else value
