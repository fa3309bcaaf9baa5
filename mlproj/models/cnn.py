"""A small convolutional network for images, sized from the input it is given (`in_shape`, C x H x W)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mlproj.errors import ConfigError


def image_shape(in_shape: Sequence[int] | None, model: str) -> tuple[int, int, int]:
    """(C, H, W) of the data, or a one-line error naming what the model needs."""
    shape = tuple(int(v) for v in in_shape or ())
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"model={model} needs images (C x H x W); the data gives examples of shape {list(shape)}: "
            "use data=digits_images or data=image_folder, or model=mlp for a table"
        )
    return shape  # type: ignore[return-value]


class CNN(nn.Module):
    """Blocks of two 3x3 convolutions (batch norm, ReLU), one block per entry of `channels`, each halving the
    image until it is 4 pixels or less on a side; then global average pooling, dropout and a linear head.
    `in_features` is the flattened size mlproj passes to every model; the shape comes from `in_shape`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_shape: Sequence[int] | None = None,
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        c, h, w = image_shape(in_shape, "cnn")
        if c * h * w != in_features:
            raise ConfigError(f"model=cnn: in_shape {[c, h, w]} does not hold in_features={in_features}")
        if not channels or any(k < 1 for k in channels):
            raise ConfigError(f"model.channels={list(channels)} must be a non-empty list of positive widths")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout={dropout} must be in [0, 1)")
        layers: list[nn.Module] = []
        width, side = c, min(h, w)
        for k in channels:
            layers += [_conv(width, k), _conv(k, k)]
            if side > 4:  # small inputs (8x8 digits) keep a few pixels of layout for the head
                layers.append(nn.MaxPool2d(2))
                side //= 2
            width = k
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, out_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
