"""`data=timeseries`: one or many series in a CSV/Parquet file, cut into forecasting windows without leakage.

Each series (rows of one `series_id`, or the whole file) is sorted by `time` and split by time: its last
`test_size` points are the test part, the `val_size` before them validation, the rest training. An example is
a window of the `window` rows before an origin (the target and the covariates, observed up to then) and the
`horizon` target values from the origin on; it belongs to the part where all its target values lie, so no
training target is ever a validation or test point, and no window is shuffled across a boundary (inputs of a
test window may reach back into earlier parts: that history is known when the forecast is made). Scaling
(per channel) and the MASE scale are fitted on the training parts only. The network gets flat windows
(`in_features` = window x channels, shape [window, channels]), so any model of the built-in task works; the
sequence models (mlproj.models.sequence) take the shape as `in_shape`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlproj.data.base import DataSource
from mlproj.data.series import SeriesLayout, regular_step
from mlproj.data.table import Table, read_table
from mlproj.errors import ConfigError
from mlproj.metrics import REGRESSION

SPLITS = ("train", "val", "test")


@dataclass
class TargetScale:
    """What the plan and the built-in task read of prepared data (`pre`): sizes and the target's scaling."""

    num_features: int
    target_mean: float
    target_std: float
    num_targets: int  # values per example: the horizon
    shape: list[int] = field(default_factory=list)  # one example: [window, channels] (offered as in_shape)
    task: str = REGRESSION
    labels: list[Any] = field(default_factory=list)


@dataclass
class SeriesPart:
    key: Any  # the series' id (None: one series)
    rows: pd.DataFrame  # its raw rows, sorted by time
    values: np.ndarray  # float64 [rows, channels]
    train_end: int  # first validation row
    val_end: int  # first test row


@dataclass
class PreparedSeries:
    table: Table
    layout: SeriesLayout
    parts: list[SeriesPart]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # flat windows [N, W*C], scaled targets [N, H]
    mase_scale: float  # mean |y_t - y_{t-season}| over the training parts
    task: str = REGRESSION

    @property
    def pre(self) -> TargetScale:
        layout = self.layout
        width = layout.window * len(layout.channels)
        return TargetScale(width, layout.mean[0], layout.std[0], layout.horizon, layout.input_shape)

    @property
    def inputs(self) -> dict[str, Any]:
        """The packaged model's input state (plain JSON): mlproj.packaging.pyfunc INPUT_PREDICTORS["series"]."""
        return self.layout.to_dict()

    @property
    def example(self) -> pd.DataFrame:
        """The packaged model's input example: the last `window` rows before the first series' test part."""
        part = self.parts[0]
        return part.rows.iloc[part.val_end - self.layout.window : part.val_end][self.layout.columns]


@dataclass(kw_only=True, eq=False)
class TimeSeriesFile(DataSource):
    """Series in a .csv/.parquet file: `time`, `target`, optional `covariates` and `series_id` columns."""

    path: str
    time: str
    target: str
    horizon: int  # values forecast per window
    window: int  # past rows the model sees
    covariates: list[str] = field(default_factory=list)  # numeric columns observed alongside the target
    series_id: str | None = None  # many series in one file: the column naming each
    season: int = 1  # the seasonal-naive forecast behind MASE repeats the value `season` rows back (12: monthly)
    val_size: int | None = None  # points of each series before the test part (default: 2 x horizon)
    test_size: int | None = None  # last points of each series (default: 2 x horizon, horizon + 1 windows)
    batch_size: int = 64
    shuffle: bool = True  # training windows only; they all lie before the validation part

    def __post_init__(self) -> None:
        for key in ("horizon", "window", "season", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}={getattr(self, key)} must be >= 1")
        for key in ("val_size", "test_size"):
            value = getattr(self, key)
            if value is not None and value < self.horizon:
                raise ConfigError(f"data.{key}={value} must be >= data.horizon={self.horizon} (one whole forecast)")
        names = [self.time, self.target, *self.covariates, *([self.series_id] if self.series_id else [])]
        if len(set(names)) < len(names):
            raise ConfigError(f"data.time, data.target, data.covariates and data.series_id overlap: {names}")
        # As the source is built (a config check, as for data=csv): a missing file before Lightning is imported.
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(f"data.path={self.path!r}: no such file")

    @property
    def sizes(self) -> tuple[int, int]:
        return self.val_size or 2 * self.horizon, self.test_size or 2 * self.horizon

    def prepare(self) -> PreparedSeries:
        frame = self._read()
        layout = SeriesLayout(self.time, self.target, self.window, self.horizon, list(self.covariates), self.series_id)
        layout.datetime = not pd.api.types.is_numeric_dtype(frame[self.time])
        try:
            frame[self.time] = layout.parse_time(frame[self.time])
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"data.time={self.time!r} holds values that are neither dates nor numbers: {exc}"
            ) from None
        if frame[self.time].isna().any():
            raise ConfigError(f"data.time={self.time!r} has {int(frame[self.time].isna().sum())} missing values")
        parts = [self._part(key, rows, layout) for key, rows in layout.groups(frame)]
        layout.freq, layout.step = regular_step(parts[0].rows[self.time], layout.datetime)
        train = np.concatenate([p.values[: p.train_end] for p in parts])
        layout.mean = train.mean(axis=0).tolist()
        layout.std = [s if s > 0 else 1.0 for s in train.std(axis=0).tolist()]
        splits = windows(parts, layout)
        for split, key in (("val", "val_size"), ("test", "test_size")):
            if len(splits[split][0]) < 2:  # r2 (and any spread) needs two
                raise ConfigError(
                    f"data.{key}={self.sizes[split == 'test']} gives one {split} window of data.horizon={self.horizon}; "
                    f"at least 2 are needed: set data.{key} >= {self.horizon + 1}"
                )
        table = Table(
            frame.drop(columns=[self.target]),
            frame[self.target],
            Path(self.path).name.split(".")[0],
            str(Path(self.path).resolve()),
        )
        return PreparedSeries(table, layout, parts, splits, self._mase_scale(parts))

    def _read(self) -> pd.DataFrame:
        path = Path(self.path).expanduser()
        try:
            frame = read_table(path)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise ConfigError(f"data.path={self.path!r} could not be read: {exc}") from exc
        columns = ", ".join(map(str, frame.columns))
        for key, names in (("time", [self.time]), ("target", [self.target]), ("covariates", self.covariates)):
            for name in names:
                if name not in frame.columns:
                    raise ConfigError(f"data.{key}={name!r} is not a column of {path.name}; columns: {columns}")
        if self.series_id and self.series_id not in frame.columns:
            raise ConfigError(f"data.series_id={self.series_id!r} is not a column of {path.name}; columns: {columns}")
        return frame

    def _part(self, key: Any, rows: pd.DataFrame, layout: SeriesLayout) -> SeriesPart:
        where = f"series {key!r}" if key is not None else f"data.path={self.path!r}"
        if rows[self.time].duplicated().any():
            raise ConfigError(f"{where}: data.time={self.time!r} repeats a time (one row per time and series)")
        try:
            values = layout.values(rows, where)
        except ValueError as exc:
            raise ConfigError(f"data: {exc}") from None
        val, test = self.sizes
        n = len(rows)
        train_end = n - val - test
        need = self.window + self.horizon
        if train_end < need:
            raise ConfigError(
                f"{where} has {n} rows: data.window={self.window} + data.horizon={self.horizon} need at least "
                f"{need} training rows after data.val_size={val} and data.test_size={test} ({need + val + test} rows)"
            )
        if train_end <= self.season:
            raise ConfigError(
                f"data.season={self.season} needs more than {self.season} training rows; {where} has {train_end}"
            )
        return SeriesPart(key, rows.reset_index(drop=True), values, train_end, n - test)

    def _mase_scale(self, parts: list[SeriesPart]) -> float:
        """The in-sample seasonal-naive MAE over the training parts of all series (Hyndman & Koehler's scale)."""
        m = self.season
        diffs = np.concatenate([np.abs(p.values[m : p.train_end, 0] - p.values[: p.train_end - m, 0]) for p in parts])
        scale = float(diffs.mean())
        if not scale > 0:
            raise ConfigError(
                f"data.season={self.season}: the seasonal-naive forecast is exact on the training part (MASE undefined)"
            )
        return scale

    def loaders(self, prepared: PreparedSeries, seed: int, steps_per_chunk: int) -> dict[str, Any]:
        import torch

        from mlproj.data.batches import split_batches

        tensors = {name: (torch.from_numpy(x), torch.from_numpy(y)) for name, (x, y) in prepared.splits.items()}
        return split_batches(tensors, self.batch_size, self.shuffle, seed, steps_per_chunk)

    def metrics(self, prepared: PreparedSeries) -> dict[str, Any]:
        """The forecasting metrics besides the built-in regression ones (mae, rmse, ...): torchmetrics' MAPE and
        sMAPE, and MASE, whose scale comes from these training parts."""
        import torchmetrics as tm

        from mlproj.forecast_metrics import MeanAbsoluteScaledError

        return {
            "mape": tm.MeanAbsolutePercentageError,
            "smape": tm.SymmetricMeanAbsolutePercentageError,
            "mase": functools.partial(MeanAbsoluteScaledError, scale=prepared.mase_scale),
        }


def windows(parts: list[SeriesPart], layout: SeriesLayout) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every window of every series, by the part its targets lie in: (flat scaled inputs, scaled targets)."""
    w, h = layout.window, layout.horizon
    found: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {s: ([], []) for s in SPLITS}
    for part in parts:
        scaled = layout.scale(part.values)
        n = len(scaled)
        # origins o: inputs rows [o - w, o), targets rows [o, o + h) inside one part
        bounds = {"train": (w, part.train_end), "val": (part.train_end, part.val_end), "test": (part.val_end, n)}
        for split, (lo, hi) in bounds.items():
            origins = np.arange(max(lo, w), hi - h + 1)
            if len(origins) == 0:
                continue
            rows = origins[:, None] + np.arange(-w, 0)[None, :]
            found[split][0].append(scaled[rows].reshape(len(origins), -1))
            found[split][1].append(scaled[origins[:, None] + np.arange(h)[None, :], 0])
    # One value per example is a flat target, as for any regression (the task squeezes a single output).
    flat = h == 1
    return {
        s: (np.concatenate(xs).astype(np.float32), np.concatenate(ys)[:, 0 if flat else slice(None)].astype(np.float32))
        for s, (xs, ys) in found.items()
    }
