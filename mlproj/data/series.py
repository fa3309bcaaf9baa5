"""The layout of a forecasting window, shared by training (mlproj.data.timeseries) and the packaged model
(mlproj.packaging.timeseries): which columns, how they are scaled, how W rows become one network input.

Its whole state is plain JSON (the packaged model's `"inputs": {"kind": "series", ...}`), so a model rebuilds
it without running stored code. Light to import: numpy and pandas only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlproj.errors import InputError

KIND = "series"


@dataclass
class SeriesLayout:
    time: str
    target: str
    window: int
    horizon: int
    covariates: list[str] = field(default_factory=list)
    series_id: str | None = None
    # Per channel (target first, then covariates), fitted on the training part only.
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    datetime: bool = False  # the time column holds dates (else numbers)
    freq: str | None = None  # pandas frequency of the dates (forecast times), when regular
    step: float | None = None  # numeric times: the regular step between rows

    @property
    def channels(self) -> list[str]:
        return [self.target, *self.covariates]

    @property
    def input_shape(self) -> list[int]:
        """One example as the network sees it: W time steps of C channels (flattened for in_features)."""
        return [self.window, len(self.channels)]

    @property
    def columns(self) -> list[str]:
        """What the packaged model takes: the time, the series' id, the target and the covariates."""
        return [self.time, *([self.series_id] if self.series_id else []), *self.channels]

    def scale(self, values: np.ndarray) -> np.ndarray:
        return ((values - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def unscale_target(self, scaled: np.ndarray) -> np.ndarray:
        return scaled.astype(np.float64) * self.std[0] + self.mean[0]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SeriesLayout:
        """From a packaged model's JSON (untrusted data): every field checked for its type; ValueError if not."""
        layout = cls(**{k: v for k, v in state.items() if k != "kind"})
        names = [layout.time, layout.target, *layout.covariates, *([layout.series_id] if layout.series_id else [])]
        numbers = [*layout.mean, *layout.std]
        if not (
            all(isinstance(n, str) for n in names)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (layout.window, layout.horizon))
            and len(layout.mean) == len(layout.std) == len(layout.channels)
            and all(isinstance(v, int | float) and np.isfinite(v) for v in numbers)
            and all(v > 0 for v in layout.std)
        ):
            raise ValueError("a series layout with invalid columns, sizes or scaling")
        return layout

    # --- frames into arrays ----------------------------------------------------------------------------

    def parse_time(self, column: pd.Series) -> pd.Series:
        if self.datetime:
            return pd.to_datetime(column)
        return pd.to_numeric(column)

    def groups(self, frame: pd.DataFrame) -> list[tuple[Any, pd.DataFrame]]:
        """(series id or None, its rows sorted by time), in order of first appearance."""
        if not self.series_id:
            return [(None, frame.sort_values(self.time, kind="stable"))]
        return [
            (key, part.sort_values(self.time, kind="stable")) for key, part in frame.groupby(self.series_id, sort=False)
        ]

    def values(self, part: pd.DataFrame, where: str) -> np.ndarray:
        """The channels of one series as float64 [rows, C]; InputError when a value is missing or not numeric."""
        try:
            values = part[self.channels].apply(pd.to_numeric).to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{where}: columns {self.channels} must be numeric ({exc})") from None
        if np.isnan(values).any():
            bad = [c for c, n in zip(self.channels, np.isnan(values).any(axis=0), strict=True) if n]
            raise InputError(f"{where}: missing values in {bad}; fill them before forecasting")
        return values

    def check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InputError(f"input is missing columns {missing}; expected columns: {self.columns}")

    # --- forecast times ---------------------------------------------------------------------------------

    def future_times(self, last: Any) -> list[Any] | None:
        """The times of the next H rows after `last`, when the training times were regular; else None."""
        if self.datetime and self.freq:
            offset = pd.tseries.frequencies.to_offset(self.freq)
            return [pd.Timestamp(last) + (i + 1) * offset for i in range(self.horizon)]
        if not self.datetime and self.step:
            return [float(last) + (i + 1) * self.step for i in range(self.horizon)]
        return None


def regular_step(times: pd.Series, datetime: bool) -> tuple[str | None, float | None]:
    """(pandas frequency, numeric step) of sorted times of one series when they are regular, else Nones."""
    if len(times) < 3:
        return None, None
    if datetime:
        try:
            return pd.infer_freq(pd.DatetimeIndex(times)), None
        except (TypeError, ValueError):
            return None, None
    steps = np.diff(times.to_numpy(dtype=np.float64))
    return (None, float(steps[0])) if np.allclose(steps, steps[0]) and steps[0] > 0 else (None, None)
