"""The baseline: linear regression, or logistic / softmax regression under a classification loss."""

from __future__ import annotations

import torch
from torch import nn


class Linear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))  # an image's C x H x W as its flat features
