"""A multilayer perceptron for tabular features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}
_NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class MLP(nn.Sequential):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes: Sequence[int] = (128, 64),
        dropout: float = 0.1,
        activation: Literal["relu", "gelu", "silu", "tanh", "leaky_relu"] = "relu",
        norm: Literal["none", "batch", "layer"] = "none",
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        if any(h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes={list(hidden_sizes)} must be positive")
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_sizes:
            layers.append(nn.Linear(width, hidden))
            if norm != "none":
                layers.append(_NORMS[norm](hidden))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # An example with a layout (an image's C x H x W) is read as its flat features.
        return super().forward(x.flatten(1))
