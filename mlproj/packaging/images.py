"""The packaged image model at predict time: images in, labels (and probabilities on request) out.

An image is a cell of the `image` column: PNG/JPEG bytes, base64 text of them (what JSON carries; MLflow's
scoring server decodes the base64 of the `binary` column before it calls the model), or an array of pixels
(uint8 values, the training shape C x H x W). The decoding, colour conversion, resize and normalisation are the
training data's own (mlproj.data.pixels), so a served image is seen as a training image was. A numpy array or
tensor of shape (N, C, H, W), or one image (C, H, W), is taken as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from mlproj.data.pixels import ImagePreprocessing
from mlproj.data.preprocess import InputError
from mlproj.metrics import CLASSIFICATION
from mlproj.packaging.predictors import decode

CHUNK = 256  # images per forward pass: bounded memory for a large request


class ImagePredictor:
    kind = CLASSIFICATION

    def __init__(self, network: torch.nn.Module, pre: ImagePreprocessing) -> None:
        self.network, self.pre = network.eval(), pre
        self.labels = list(pre.labels)

    @classmethod
    def from_meta(cls, network: torch.nn.Module, meta: dict[str, Any]) -> ImagePredictor:
        """From the packaged model's JSON (`inputs` of kind image, `labels`); ValueError when malformed."""
        return cls(network, ImagePreprocessing.from_inputs(meta["inputs"], meta.get("labels") or []))

    @staticmethod
    def requirements() -> list[str]:
        """What predicting imports beyond a table model's requirements: Pillow, to decode the images."""
        import PIL

        return [f"pillow=={PIL.__version__}"]

    def pixels(self, data: Any) -> np.ndarray:
        """uint8 (N, C, H, W) from any accepted input."""
        if isinstance(data, pd.DataFrame):
            if self.pre.column not in data.columns:
                raise InputError(f"input needs a column {self.pre.column!r} of images (PNG/JPEG bytes or base64)")
            return self.pre.pixels(data[self.pre.column].tolist())
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        if isinstance(data, np.ndarray) and data.dtype != object:
            batch = data[None] if data.shape == tuple(self.pre.shape) else data
            if batch.ndim != 4 or list(batch.shape[1:]) != self.pre.shape:
                raise InputError(
                    f"image arrays must be (N, {', '.join(map(str, self.pre.shape))}); got {list(data.shape)}"
                )
            return np.stack([self.pre.one(image) for image in batch]) if len(batch) else batch.astype(np.uint8)
        return self.pre.pixels(list(data))

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        pixels = self.pixels(data)
        outs = []
        with torch.inference_mode():
            for start in range(0, max(len(pixels), 1), CHUNK):
                outs.append(self.network(self.pre.normalise(pixels[start : start + CHUNK])).float())
        return decode(torch.cat(outs), CLASSIFICATION, self.labels, params)
