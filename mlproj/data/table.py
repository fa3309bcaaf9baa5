"""A raw table as every source gives it, and the helpers that read and narrow one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where tables are read: checking a config needs none
    import pandas as pd

from mlproj.config.schema import TaskKind
from mlproj.errors import ConfigError


@dataclass
class Table:
    features: pd.DataFrame
    target: pd.Series
    name: str  # short dataset name, e.g. "diabetes" or the file's stem
    source: str  # where it came from: a file path or a loader, recorded in MLflow
    task_hint: TaskKind = TaskKind.auto  # the task the source itself implies, if any
    dropped_target_rows: int = 0


def is_parquet(path: str | Path | None) -> bool:
    """Parquet or CSV (also compressed: .csv.gz), by the file's extension."""
    return bool(path) and "".join(Path(str(path)).suffixes).lower().endswith((".parquet", ".pq"))


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (also compressed) or Parquet file, chosen by its extension."""
    import pandas as pd

    return pd.read_parquet(path) if is_parquet(path) else pd.read_csv(path)


FLOAT32_MAX = 3.4028234663852886e38  # what the tensors hold: a larger value becomes inf


def check_header(path: Path) -> None:
    """Refuse duplicate column names (pandas would silently rename the second `a` to `a.1`)."""
    import pandas as pd

    if is_parquet(path):
        import pyarrow.parquet as pq

        names = [str(n) for n in pq.read_schema(path).names]
    else:
        names = [str(n) for n in pd.read_csv(path, header=None, nrows=1).iloc[0].tolist()]
    seen: set[str] = set()
    dups = [n for n in names if n in seen or seen.add(n)]
    if dups:
        raise ConfigError(f"data.path={path.name!r} has duplicate column names: {', '.join(dict.fromkeys(dups))}")


def check_finite(table: Table) -> None:
    """Refuse infinite values and values beyond float32 in the numeric features and target a run uses:
    training on them would end as a NaN loss, reported as divergence (the wrong cause)."""
    import numpy as np

    frame = table.features.assign(**{"(target)": table.target}) if table.target is not None else table.features
    numeric = frame.select_dtypes("number")
    if numeric.empty:
        return
    values = numeric.to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
    if bad.any():
        column = bad.any(axis=0).argmax()
        rows = np.flatnonzero(bad[:, column])
        name = numeric.columns[column]
        where = f"the target {table.target.name!r}" if name == "(target)" else f"column {name!r}"
        raise ConfigError(
            f"data: {where} of {table.name} holds {len(rows)} infinite or too large value(s) such as "
            f"{values[rows[0], column]:g}; leave such cells empty to mean missing"
        )


def select_columns(table: Table, source: Any) -> Table:
    columns = list(table.features.columns)
    for key, names in (("data.include", source.include or []), ("data.exclude", source.exclude)):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise ConfigError(f"{key} names unknown columns {unknown}; columns: {', '.join(map(str, columns))}")
    keep = list(source.include) if source.include else columns
    keep = [c for c in keep if c not in set(source.exclude)]
    if not keep:
        raise ConfigError("data.include/data.exclude leave no feature columns")
    table.features = table.features[keep]
    return table
