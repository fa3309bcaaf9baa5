"""Table hygiene before the split: row-index columns, numbers with a few stray strings, a rare class.

Each rule warns in one line naming the column, the reason and the key that changes the decision, so nothing a
table holds is dropped or changed silently. Runs on the whole table (a row index is an order over the file,
which a shuffled split would hide).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlproj.errors import InputError

log = logging.getLogger(__name__)

DIRTY_SHARE = 0.05  # a text column whose non-numeric cells are at most this share of its values is numeric
RARE_CLASS_SHARE = 0.10  # a class below this share of the rows is rare: warned about


def index_columns(features: pd.DataFrame, keep: list[str] | None = None) -> dict[str, str]:
    """Integer columns that number the rows (R's `rownames`, pandas' exported index): column -> why. Unique
    and equal to a range (in any order), or unique and monotone over the file. Columns in `keep` stay."""
    found = {}
    for name in features.columns:
        col = features[name]
        if name in (keep or []) or not pd.api.types.is_integer_dtype(col) or len(col) < 10:
            continue
        values = col.to_numpy(dtype=np.int64)
        if len(np.unique(values)) != len(values):
            continue
        low, high = int(values.min()), int(values.max())
        if high - low + 1 == len(values):
            found[str(name)] = f"a row index: unique integers {low}..{high}"
        elif col.is_monotonic_increasing or col.is_monotonic_decreasing:
            found[str(name)] = "a row index: unique integers in file order"
    return found


def parse_dirty_numbers(features: pd.DataFrame, strict: bool) -> pd.DataFrame:
    """Text columns that are numbers but for a few cells (`abc`, `n/a?`) become numeric, those cells missing,
    with a warning; `strict` refuses the table instead (InputError)."""
    changed = False
    for name in list(features.columns):
        col = features[name]
        if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            continue
        present = col.dropna()
        if present.empty or not all(isinstance(v, str) for v in present.head(1000)):
            continue
        parsed = pd.to_numeric(present.str.strip(), errors="coerce")
        bad = present[parsed.isna()]
        if bad.empty or len(bad) > DIRTY_SHARE * len(present):
            continue  # no stray cell (numbers kept as text stay text), or a real text column
        examples = ", ".join(repr(v) for v in pd.unique(bad)[:3])
        if strict:
            raise InputError(
                f"column {name!r} is numeric but {len(bad)} cells are not numbers (e.g. {examples}); "
                "data.strict=false reads them as missing"
            )
        log.warning(
            "column %r: %d non-numeric cells read as missing (e.g. %s); data.strict=true refuses such a table",
            name,
            len(bad),
            examples,
        )
        features = features.copy() if not changed else features  # never write into the caller's frame
        changed = True
        features[name] = pd.to_numeric(col.astype("string").str.strip(), errors="coerce").astype("float64")
    return features


def warn_rare_class(target: pd.Series) -> None:
    """One line when a class is rare: accuracy says little then, and the run's defaults act on it."""
    shares = target.value_counts(normalize=True)
    if len(shares) and shares.iloc[-1] < RARE_CLASS_SHARE:
        log.warning(
            "class %r is %.1f%% of the rows (rare): judge the model by f1, not accuracy; a binary decision threshold "
            "is chosen on validation (task.threshold), more classes weight the loss (task.class_weight)",
            _plain(shares.index[-1]),
            100 * shares.iloc[-1],
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
