"""A ResNet-18-style network built from scratch (basic residual blocks, [2, 2, 2, 2]), sized from the input.

No pretrained weights can be downloaded here: `weights` names a local safetensors file to start from. Its
tensors are matched by name and shape, with torchvision's names for ResNet-18 (conv1, bn1, layer1.0.conv1, ...,
fc), so torchvision's ImageNet weights saved with `safetensors.torch.save_file(model.state_dict(), path)`
elsewhere load here; a tensor of another shape (the head, for another number of classes; conv1 for grayscale
or the small stem) keeps its fresh initialisation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from mlproj.errors import ConfigError
from mlproj.models.cnn import image_shape

log = logging.getLogger(__name__)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """Four stages of basic blocks (`layers`), `width`, 2x, 4x, 8x channels, the last three halving the image.
    `stem`: `imagenet` is a 7x7 stride-2 convolution and max pooling (images of 64 pixels or more), `small` a
    3x3 convolution that keeps the resolution (digits, CIFAR-sized images); `auto` picks by the image's side."""

    # Constructor arguments that only set the starting point: the packaged model's recipe leaves them out
    # (its weights file holds the trained values; the starting file need not exist where it loads).
    INIT_ONLY = frozenset({"weights"})

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_shape: Sequence[int] | None = None,
        width: int = 64,
        layers: Sequence[int] = (2, 2, 2, 2),
        stem: Literal["auto", "small", "imagenet"] = "auto",
        weights: str | None = None,
    ) -> None:
        super().__init__()
        c, h, w = image_shape(in_shape, "resnet")
        if c * h * w != in_features:
            raise ConfigError(f"model=resnet: in_shape {[c, h, w]} does not hold in_features={in_features}")
        if width < 1 or len(layers) != 4 or any(n < 1 for n in layers):
            raise ConfigError(f"model.width={width} must be >= 1 and model.layers={list(layers)} 4 counts >= 1")
        large = stem == "imagenet" or (stem == "auto" and min(h, w) >= 64)
        self.conv1 = nn.Conv2d(c, width, 7 if large else 3, 2 if large else 1, 3 if large else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if large else nn.Identity()
        widths = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, (cout, count) in enumerate(zip(widths, layers, strict=True)):
            blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if i > 0 and j == 0 else 1) for j in range(count)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, out_features)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if weights:
            self.load_start(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def load_start(self, weights: str) -> None:
        """The tensors of a local safetensors file whose name and shape match; the rest stay as initialised."""
        from safetensors import SafetensorError, safe_open

        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.weights={weights!r}: no such file (a local safetensors file; none is downloaded)")
        own = self.state_dict()
        try:
            with safe_open(str(path), framework="pt") as f:
                names = [k for k in f.keys() if k in own and list(f.get_slice(k).get_shape()) == list(own[k].shape)]  # noqa: SIM118
                if not set(names) & set(dict(self.named_parameters())):  # a buffer's count alone is no match
                    raise ConfigError(f"model.weights={weights!r}: no tensor matches this network by name and shape")
                if own[names[0]].is_meta:  # built on the meta device for the startup check: nothing to copy
                    return
                loaded = {k: f.get_tensor(k) for k in names}
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"model.weights={weights!r} is not a readable safetensors file: {exc}") from None
        self.load_state_dict(loaded, strict=False)
        log.info("model.weights: %d of %d tensors loaded from %s", len(loaded), len(own), path)
