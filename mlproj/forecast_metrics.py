"""MASE, the forecasting metric torchmetrics lacks.

Hand-written because torchmetrics has MAPE and sMAPE but no MASE: its denominator is not a function of the batch
but of the training series (the in-sample error of the seasonal-naive forecast, y_t - y_{t-season}), which the
data source computes once (mlproj.data.timeseries) and passes in. As a torchmetrics Metric it is updated on the
device per batch, synchronised across DDP ranks (sum states) and computed once per epoch, like every metric of
the built-in task.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric


class MeanAbsoluteScaledError(Metric):
    """MASE (Hyndman & Koehler, 2006): the forecast's mean absolute error divided by `scale`, the mean absolute
    error of the seasonal-naive forecast on the training part. Below 1: better than that naive forecast was
    in-sample."""

    is_differentiable = True
    higher_is_better = False
    full_state_update = False

    def __init__(self, scale: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not float(scale) > 0:
            raise ValueError(f"scale={scale} must be > 0 (the seasonal-naive error on the training part)")
        self.scale = float(scale)
        self.add_state("abs_error", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.abs_error += (preds - target).abs().sum()
        self.count += target.numel()

    def compute(self) -> torch.Tensor:
        return self.abs_error / self.count / self.scale
