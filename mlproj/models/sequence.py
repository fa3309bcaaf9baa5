"""Sequence models over a window of time steps: a GRU and a temporal convolutional network (TCN).

Like every network of the built-in task they take `in_features` (one example's flattened size) and
`out_features`; `in_shape` ([window, channels], offered by mlproj where a constructor takes it) says how a
flat example folds back into time steps. Without it a flat input is one channel over `in_features` steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _fold(in_features: int, in_shape: list[int] | None) -> tuple[int, int]:
    """(time steps, channels) of one example."""
    if in_shape is None:
        return in_features, 1
    shape = [int(s) for s in in_shape]
    if len(shape) != 2 or shape[0] * shape[1] != in_features:
        raise ValueError(f"in_shape={shape} must be [steps, channels] with steps x channels = {in_features}")
    return shape[0], shape[1]


class GRU(nn.Module):
    """A GRU over the window; the last hidden state maps linearly to all `out_features` (direct multi-step)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_shape: list[int] | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if hidden_size < 1 or num_layers < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError("hidden_size and num_layers must be >= 1, dropout in [0, 1)")
        self.steps, self.channels = _fold(in_features, in_shape)
        # nn.GRU applies dropout between layers only: with one layer it would warn and do nothing.
        inner = dropout if num_layers > 1 else 0.0
        self.gru = nn.GRU(self.channels, hidden_size, num_layers, batch_first=True, dropout=inner)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.reshape(len(x), self.steps, self.channels))
        return self.head(out[:, -1])


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai, Kolter & Koltun, 2018)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation  # on the left only: no step sees its future
        self.conv1 = nn.Conv1d(cin, cout, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, kernel_size, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        out = self.drop(F.relu(self.conv2(F.pad(out, (self.pad, 0)))))
        return F.relu(out + self.skip(x))


class TCN(nn.Module):
    """A temporal convolutional network: dilations 1, 2, 4, ... until the receptive field covers the window
    (or `levels` blocks); the last step's features map linearly to all `out_features`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_shape: list[int] | None = None,
        channels: int = 32,
        kernel_size: int = 3,
        levels: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if channels < 1 or kernel_size < 2 or (levels is not None and levels < 1) or not 0.0 <= dropout < 1.0:
            raise ValueError("channels >= 1, kernel_size >= 2, levels >= 1 (or null), dropout in [0, 1)")
        self.steps, self.inputs = _fold(in_features, in_shape)
        levels = levels or receptive_levels(self.steps, kernel_size)
        blocks = [
            _CausalBlock(self.inputs if i == 0 else channels, channels, kernel_size, 2**i, dropout)
            for i in range(levels)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(len(x), self.steps, self.inputs).transpose(1, 2)  # [batch, channels, steps]
        return self.head(self.blocks(seq)[:, :, -1])


def receptive_levels(steps: int, kernel_size: int) -> int:
    """The fewest blocks whose receptive field, 1 + 2 (k - 1)(2^L - 1), covers `steps`."""
    levels = 1
    while 1 + 2 * (kernel_size - 1) * (2**levels - 1) < steps:
        levels += 1
    return levels
