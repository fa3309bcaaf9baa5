"""The packaged forecaster: the recent history of each series in, the next `horizon` values out.

Input: a DataFrame with the time column, the target, the covariates and (for many series) the series' id,
at least the last `window` rows of each series (older rows are ignored). Output: one row per series and step
(1..horizon) with the forecast in the target's units, and the forecast's time when the training times were
regular. The window's layout and scaling are plain JSON in the model (mlproj.data.series). Light to import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from mlproj.data.series import SeriesLayout
from mlproj.errors import InputError
from mlproj.metrics import REGRESSION

STEP, PREDICTION = "step", "prediction"


class SeriesPredictor:
    kind = REGRESSION

    def __init__(self, network: torch.nn.Module, layout: SeriesLayout) -> None:
        self.network, self.layout = network.eval(), layout

    @classmethod
    def from_meta(cls, network: torch.nn.Module, meta: dict[str, Any]) -> SeriesPredictor:
        return cls(network, SeriesLayout.from_dict(meta["inputs"]))

    @classmethod
    def requirements(cls) -> list[str]:
        """Pip requirements beyond the packaged model's own: none (numpy and pandas are already there)."""
        return []

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        layout = self.layout
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        layout.check_columns(frame)
        frame = frame.assign(**{layout.time: self._times(frame[layout.time])})
        keys, lasts, windows = [], [], []
        for key, rows in layout.groups(frame):
            where = f"series {key!r}" if key is not None else "input"
            if len(rows) < layout.window:
                raise InputError(f"{where} has {len(rows)} rows; the model needs the last {layout.window}")
            recent = rows.iloc[-layout.window :]
            windows.append(layout.scale(layout.values(recent, where)).reshape(-1))
            keys.append(key)
            lasts.append(recent[layout.time].iloc[-1])
        with torch.inference_mode():
            out = self.network(torch.from_numpy(np.stack(windows))).float().numpy()
        return self._frame(keys, lasts, layout.unscale_target(out.reshape(len(keys), layout.horizon)))

    def _times(self, column: pd.Series) -> pd.Series:
        try:
            return self.layout.parse_time(column)
        except (ValueError, TypeError) as exc:
            raise InputError(f"column {self.layout.time!r}: {exc}") from None

    def _frame(self, keys: list[Any], lasts: list[Any], values: np.ndarray) -> pd.DataFrame:
        layout, h = self.layout, self.layout.horizon
        columns: dict[str, Any] = {}
        if layout.series_id:
            columns[layout.series_id] = np.repeat(np.asarray(keys, dtype=object), h)
        columns[STEP] = np.tile(np.arange(1, h + 1), len(keys))
        times = [layout.future_times(last) for last in lasts]
        if all(t is not None for t in times):
            columns[layout.time] = [t for ts in times for t in ts]
        columns[PREDICTION] = values.reshape(-1)
        return pd.DataFrame(columns)

    def test_figures(self, prepared: Any) -> dict[str, Any]:
        """The forecast plot of the test parts: {artifact path: Figure}."""
        return {"plots/forecast.png": forecast_figure(self, prepared)}


def forecast_figure(predictor: SeriesPredictor, prepared: Any, most: int = 4) -> Any:
    """History, forecast and actual values of up to `most` series: forecasts from back-to-back origins over each
    test part, each from the `window` rows before it, through the packaged model itself."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    layout = predictor.layout
    parts = prepared.parts[:most]
    fig, axes = plt.subplots(len(parts), 1, figsize=(9, 3 * len(parts)), squeeze=False)
    for ax, part in zip(axes[:, 0], parts, strict=True):
        rows, t = part.rows, part.rows[layout.time]
        start = max(0, part.val_end - max(4 * layout.horizon, 2 * layout.window))
        ax.plot(
            t.iloc[start : part.val_end], rows[layout.target].iloc[start : part.val_end], color="grey", label="history"
        )
        ax.plot(t.iloc[part.val_end :], rows[layout.target].iloc[part.val_end :], color="black", label="actual")
        for i, origin in enumerate(range(part.val_end, len(rows) - layout.horizon + 1, layout.horizon)):
            out = predictor.predict(rows.iloc[origin - layout.window : origin][layout.columns])
            span = t.iloc[origin : origin + layout.horizon]
            ax.plot(span, out[PREDICTION].to_numpy(), color="tab:orange", label="forecast" if i == 0 else None)
        ax.axvline(t.iloc[part.val_end], color="grey", linestyle=":")
        ax.set(title=f"test forecast{'' if part.key is None else f': {part.key}'}", ylabel=layout.target)
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
