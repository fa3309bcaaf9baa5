"""The built-in table sources, one class each (their fields are their config keys): scikit-learn's bundled
sets, a generated set, a CSV/Parquet file (streamed in row groups: streaming.StreamingParquet).

Every source gives the same thing, a raw `Table` (features as a DataFrame, the target as a Series), so the
preprocessing and the packaged model see exactly the columns a user would send at predict time. The shared
keys (split, batching, preprocessing choices) live in `TableSource`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlproj.config.schema import TaskKind
from mlproj.data.base import DataSource, check_seed, check_split_fractions
from mlproj.data.table import Table, check_finite, check_header, read_table, select_columns
from mlproj.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported where tables are made: checking a config needs none
    from mlproj.data.prepare import PreparedData

BUNDLED = {  # data=<name>: scikit-learn loader, task
    "diabetes": ("load_diabetes", TaskKind.regression),
    "breast_cancer": ("load_breast_cancer", TaskKind.classification),
    "wine": ("load_wine", TaskKind.classification),
    "digits": ("load_digits", TaskKind.classification),
}


@dataclass(kw_only=True, eq=False)
class TableSource(DataSource):
    """Keys every table shares: which columns, the split, batching and the preprocessing choices."""

    target: str | None = None  # the label column; bundled and synthetic sets name their own
    task: Literal["auto", "regression", "classification"] = "auto"  # auto: inferred from the target
    include: list[str] | None = None  # feature columns to keep (default: all but the target)
    exclude: list[str] = field(default_factory=list)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 42
    batch_size: int = 64
    shuffle: bool = True
    # Categorical columns keep their `max_categories` most frequent values; string columns that are almost
    # unique per row (IDs, free text) are dropped with a warning.
    max_categories: int = 50
    id_unique_ratio: float = 0.9
    # A numeric table with a layout (pixels of an image) keeps it with drop_constant=false scale=false.
    drop_constant: bool = True  # constant columns carry nothing for a table; a pixel grid needs every cell
    scale: bool = True  # standardise each numeric column (false: imputed, values as they are)
    # Integer columns numbering the rows (unique: a range, or monotone over the file) are dropped as IDs.
    drop_index_columns: bool = True
    strict: bool = False  # true: a numeric column with stray non-numeric cells is refused (default: missing)

    def __post_init__(self) -> None:
        check_split_fractions(self.val_fraction, self.test_fraction)
        check_seed("data.split_seed", self.split_seed)
        for key, low in (("batch_size", 1), ("max_categories", 1)):
            if getattr(self, key) < low:
                raise ConfigError(f"data.{key}={getattr(self, key)} must be >= {low}")
        if not 0 < self.id_unique_ratio <= 1:  # a share of the rows: above 1, no column is ever an ID
            raise ConfigError(f"data.id_unique_ratio={self.id_unique_ratio} must be in (0, 1]")

    def load(self) -> Table:
        raise NotImplementedError

    def table(self) -> Table:
        table = select_columns(self.load(), self)
        check_finite(table)  # the columns it uses: an excluded column may hold anything
        return table

    def prepare(self) -> PreparedData:
        from mlproj.data.prepare import prepare, resolve_task

        table = self.table()
        return prepare(table, resolve_task(table, self), self)

    def loaders(self, prepared: PreparedData, seed: int, steps_per_chunk: int) -> dict[str, Any]:
        import torch

        from mlproj.data.batches import split_batches

        tensors = {name: (torch.from_numpy(s.x), torch.from_numpy(s.y)) for name, s in prepared.splits.items()}
        return split_batches(tensors, self.batch_size, self.shuffle, seed, steps_per_chunk)


@dataclass(kw_only=True, eq=False)
class SklearnDataset(TableSource):
    """One of scikit-learn's bundled sets (shipped with the package: nothing is downloaded)."""

    name: Literal["diabetes", "breast_cancer", "wine", "digits"] = "diabetes"

    def load(self) -> Table:
        import sklearn.datasets

        loader, task = BUNDLED[self.name]
        bunch = getattr(sklearn.datasets, loader)(as_frame=True)
        return Table(bunch.data, bunch.target.rename("target"), self.name, f"sklearn.datasets.{loader}", task)


@dataclass(kw_only=True, eq=False)
class SyntheticTable(TableSource):
    """A generated table (scikit-learn make_regression / make_classification)."""

    rows: int = 1000
    features: int = 10
    classes: int = 2  # data.task=classification: number of classes (auto or regression: a regression set)
    noise: float = 10.0  # regression: standard deviation of the noise

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, low in (("rows", 20), ("features", 1), ("classes", 2), ("noise", 0)):
            if getattr(self, key) < low:
                raise ConfigError(f"data.{key}={getattr(self, key)} must be >= {low}")

    def load(self) -> Table:
        import pandas as pd
        from sklearn.datasets import make_classification, make_regression

        n_inf = max(1, min(self.features, self.features // 2 + 1))
        kind = "classification" if self.task == "classification" else "regression"
        if kind == "classification":
            x, y = make_classification(
                n_samples=self.rows,
                n_features=self.features,
                n_informative=max(n_inf, min(self.features, self.classes)),
                n_redundant=0,
                n_classes=self.classes,
                n_clusters_per_class=1,
                random_state=self.split_seed,
            )
        else:
            x, y = make_regression(
                n_samples=self.rows,
                n_features=self.features,
                n_informative=n_inf,
                noise=self.noise,
                random_state=self.split_seed,
            )
        features = pd.DataFrame(x, columns=[f"x{i}" for i in range(self.features)])
        source = "sklearn.datasets.make_" + kind
        return Table(features, pd.Series(y, name="target"), "synthetic", source, TaskKind(kind))


@dataclass(kw_only=True, eq=False)
class TableFile(TableSource):
    """Your own table: a .csv (also compressed) or .parquet file, chosen by its extension."""

    path: str
    target: str

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_file()

    def check_file(self) -> None:
        """Here, as the source is built (a config check), not when the table is read: a missing file is refused
        before the rest of the run's start-up (Lightning, the data) is paid for."""
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(f"data.path={self.path!r}: no such file")

    def load(self) -> Table:
        import pandas as pd

        path = Path(self.path).expanduser()
        self.check_file()  # it may have gone since
        try:
            frame = read_table(path)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise ConfigError(f"data.path={self.path!r} could not be read: {exc}") from exc
        if frame.empty or frame.shape[1] == 0:
            raise ConfigError(f"data.path={self.path!r} holds no rows")
        check_header(path)
        if self.target not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise ConfigError(f"data.target={self.target!r} is not a column of {path.name}; columns: {columns}")
        target = frame.pop(self.target)
        keep = target.notna()
        dropped = int((~keep).sum())
        if dropped == len(target):
            raise ConfigError(f"data.target={self.target!r} has no values in {path.name}")
        frame, target = frame[keep].reset_index(drop=True), target[keep].reset_index(drop=True)
        return Table(frame, target, path.name.split(".")[0], str(path.resolve()), dropped_target_rows=dropped)


def load_table(source: Any) -> Table:
    """The raw table of a source, or of a `data` config node (built as a run builds it)."""
    if not isinstance(source, TableSource):
        from mlproj.config import families

        source = families.build(source, "data", "data")
    return source.table()
