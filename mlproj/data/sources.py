"""Where raw tables come from: scikit-learn's bundled sets, a generated set, or a CSV/Parquet file.

Every source returns the same thing, a raw `Table` (features as a DataFrame, the target as a Series),
so preprocessing and the packaged model see exactly the columns a user would send at predict time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlproj.config.schema import DataConfig, Source, TaskKind
from mlproj.errors import ConfigError

_BUNDLED_LOADERS = {
    Source.diabetes: "load_diabetes",
    Source.breast_cancer: "load_breast_cancer",
    Source.wine: "load_wine",
    Source.digits: "load_digits",
}
_BUNDLED_TASKS = {
    Source.diabetes: TaskKind.regression,
    Source.breast_cancer: TaskKind.classification,
    Source.wine: TaskKind.classification,
    Source.digits: TaskKind.classification,
}


@dataclass
class Table:
    features: pd.DataFrame
    target: pd.Series
    name: str  # short dataset name, e.g. "diabetes" or the file's stem
    source: str  # where it came from: a file path or a loader, recorded in MLflow
    task_hint: TaskKind = TaskKind.auto  # the task the source itself implies, if any
    dropped_target_rows: int = 0


def load_table(cfg: DataConfig) -> Table:
    source = Source(cfg.source)
    if source in _BUNDLED_LOADERS:
        table = _bundled(source)
    elif source is Source.synthetic:
        table = _synthetic(cfg)
    else:
        table = _file(cfg)
    return _select_columns(table, cfg)


def _bundled(source: Source) -> Table:
    import sklearn.datasets

    loader = _BUNDLED_LOADERS[source]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    return Table(
        bunch.data,
        bunch.target.rename("target"),
        source.value,
        f"sklearn.datasets.{loader}",
        _BUNDLED_TASKS[source],
    )


def _synthetic(cfg: DataConfig) -> Table:
    from sklearn.datasets import make_classification, make_regression

    task = TaskKind(cfg.synthetic_task)
    n_inf = max(1, min(cfg.features, cfg.features // 2 + 1))
    if task is TaskKind.classification:
        x, y = make_classification(
            n_samples=cfg.rows,
            n_features=cfg.features,
            n_informative=max(n_inf, min(cfg.features, cfg.classes)),
            n_redundant=0,
            n_classes=cfg.classes,
            n_clusters_per_class=1,
            random_state=cfg.split_seed,
        )
    else:
        x, y = make_regression(
            n_samples=cfg.rows,
            n_features=cfg.features,
            n_informative=n_inf,
            noise=cfg.noise,
            random_state=cfg.split_seed,
        )
        task = TaskKind.regression
    columns = [f"x{i}" for i in range(cfg.features)]
    features = pd.DataFrame(x, columns=columns)
    return Table(features, pd.Series(y, name="target"), "synthetic", "sklearn.datasets.make_" + task.value, task)


def _file(cfg: DataConfig) -> Table:
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.path={cfg.path!r}: no such file")
    try:
        frame = read_table(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"data.path={cfg.path!r} could not be read: {exc}") from exc
    if frame.empty or frame.shape[1] == 0:
        raise ConfigError(f"data.path={cfg.path!r} holds no rows")
    if cfg.target not in frame.columns:
        raise ConfigError(
            f"data.target={cfg.target!r} is not a column of {path.name}; columns: {', '.join(map(str, frame.columns))}"
        )
    target = frame.pop(cfg.target)
    keep = target.notna()
    dropped = int((~keep).sum())
    if dropped == len(target):
        raise ConfigError(f"data.target={cfg.target!r} has no values in {path.name}")
    frame, target = frame[keep].reset_index(drop=True), target[keep].reset_index(drop=True)
    name = path.name.split(".")[0]
    return Table(frame, target, name, str(path.resolve()), dropped_target_rows=dropped)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (also compressed) or Parquet file, chosen by its extension."""
    suffixes = "".join(path.suffixes).lower()
    return pd.read_parquet(path) if suffixes.endswith((".parquet", ".pq")) else pd.read_csv(path)


def _select_columns(table: Table, cfg: DataConfig) -> Table:
    columns = list(table.features.columns)
    for key, names in (("data.include", cfg.include or []), ("data.exclude", cfg.exclude)):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise ConfigError(f"{key} names unknown columns {unknown}; columns: {', '.join(map(str, columns))}")
    keep = list(cfg.include) if cfg.include else columns
    keep = [c for c in keep if c not in set(cfg.exclude)]
    if not keep:
        raise ConfigError("data.include/data.exclude leave no feature columns")
    table.features = table.features[keep]
    return table
