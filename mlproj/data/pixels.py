"""Images as the network sees them, shared by training and the packaged model: decode, convert, resize, normalise.

One function turns an encoded image (PNG/JPEG bytes, or base64 text of them) or an array of pixels into the
uint8 `(C, H, W)` array the training data holds, so a served image goes through exactly what a training image
went through (Pillow's decoder, colour mode and resampling). `ImagePreprocessing` is the fitted state (shape,
colour mode, per-channel mean and std, labels), plain JSON in the packaged model (`inputs`, kind "image").

Light to import (the packaged model's loader imports it): Pillow is imported when an image is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlproj.data.preprocess import InputError

KIND = "image"
MODES = {1: "L", 3: "RGB"}  # channels -> Pillow mode
RESAMPLE = "BILINEAR"  # Pillow's resampling filter for every resize, at training and at predict time


def decode(blob: bytes | str, mode: str) -> Any:
    """A PIL image in `mode` from encoded bytes, or from base64 text of them (what JSON carries)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(blob, str):
        try:
            blob = base64.b64decode(blob, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"an image string is not base64 of a PNG/JPEG file: {exc}") from None
    try:
        image = Image.open(io.BytesIO(bytes(blob)))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot decode an image (PNG or JPEG expected): {exc}") from None
    return image.convert(mode)


def to_array(image: Any, size: tuple[int, int]) -> np.ndarray:
    """uint8 (C, H, W) of a PIL image, resized to `size` (height, width) when it differs."""
    from PIL import Image

    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), getattr(Image.Resampling, RESAMPLE))
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (C, H, W) array (C = 1 or 3)."""
    from PIL import Image

    array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), MODES[pixels.shape[0]]).save(out, format="PNG")
    return out.getvalue()


@dataclass
class ImagePreprocessing:
    """What the network expects, fitted on the training split: `shape` (C, H, W), Pillow `mode`, and the
    per-channel `mean`/`std` of the pixels scaled to [0, 1]. Duck-types the table `Preprocessor` where a run
    reads it (labels, task, num_features, target scaling, input columns)."""

    shape: list[int]
    mean: list[float]
    std: list[float]
    labels: list[Any] = field(default_factory=list)
    column: str = "image"
    task: str = "classification"
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def mode(self) -> str:
        return MODES[self.shape[0]]

    @property
    def num_features(self) -> int:
        return int(np.prod(self.shape))

    @property
    def input_columns(self) -> list[str]:
        return [self.column]

    @classmethod
    def fit(cls, train: np.ndarray, labels: list[Any]) -> ImagePreprocessing:
        mean, std = [], []
        for c in range(train.shape[1]):  # one channel at a time: a float copy of a third of the images at most
            channel = train[:, c].astype(np.float64) / 255.0
            mean.append(float(channel.mean()))
            std.append(max(float(channel.std()), 1e-3))  # a blank channel must not divide by zero
        return cls(list(train.shape[1:]), mean, std, labels)

    def inputs(self) -> dict[str, Any]:
        """The packaged model's `inputs` (plain JSON; the labels travel beside it, as for every model)."""
        state = asdict(self)
        for key in ("labels", "task", "target_mean", "target_std"):
            state.pop(key)
        return {"kind": KIND, **state}

    @classmethod
    def from_inputs(cls, state: dict[str, Any], labels: list[Any]) -> ImagePreprocessing:
        try:
            shape = [int(v) for v in state["shape"]]
            mean, std = [float(v) for v in state["mean"]], [float(v) for v in state["std"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"image inputs need shape, mean and std: {exc}") from None
        if len(shape) != 3 or shape[0] not in MODES or not len(mean) == len(std) == shape[0]:
            raise ValueError(f"image inputs: shape {shape} must be (1 or 3, H, W) with a mean and std per channel")
        return cls(shape, mean, std, list(labels), str(state.get("column", "image")))

    def pixels(self, values: Any) -> np.ndarray:
        """uint8 (N, C, H, W) from encoded images (bytes, base64 text) or pixel arrays of the training shape."""
        return np.stack([self.one(v) for v in values]) if len(values) else np.zeros((0, *self.shape), np.uint8)

    def one(self, value: Any) -> np.ndarray:
        if isinstance(value, bytes | bytearray | memoryview | str):
            return to_array(decode(value, self.mode), (self.shape[1], self.shape[2]))
        array = np.asarray(value)
        if array.shape != tuple(self.shape):
            raise InputError(f"an image array must have the training shape {self.shape}; got {list(array.shape)}")
        if array.dtype == np.uint8:
            return array
        if not np.issubdtype(array.dtype, np.number) or array.min() < 0 or array.max() > 255:
            raise InputError("image pixel values must be numbers in [0, 255] (uint8 pixels, as in image files)")
        return np.round(array).astype(np.uint8)

    def normalise(self, pixels: Any) -> Any:
        """float32 tensor (N, C, H, W), normalised, from uint8 pixels (a numpy array or a tensor, any device)."""
        import torch

        x = torch.as_tensor(pixels)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return (x.float() / 255.0 - mean) / std
