"""What a packaged model does at predict time: rows in, predictions out, the preprocessing with the network.

`TabularPredictor`: raw table rows (strings, missing values) through the fitted preprocessing; predictions in
the target's original units or labels. `TensorPredictor`: numeric columns, one per element of an example (a
user's data module), reshaped to the example's shape. Light to import: no Lightning, no Hydra, no MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from mlproj.data.preprocess import Preprocessor
from mlproj.errors import InputError
from mlproj.metrics import CLASSIFICATION, REGRESSION

PROBABILITIES_PARAM = "probabilities"


class Predictions(pd.Series):
    """A classifier's labels alone: 1-D, named `prediction`. mlflow.models.evaluate's classifier joins the true
    labels and predict()'s output with np.concatenate, which refused the (n, 1) array of a one-column frame ("all
    the input arrays must have same number of dimensions"). `["prediction"]` still answers, as the frame did, and
    serving still sends records ({"prediction": ...}); with probabilities the answer is a frame as before."""

    @property
    def _constructor(self) -> type:
        return pd.Series  # what pandas derives from it (a copy, a slice) is a plain Series

    # What code written for the one-column frame used: ["prediction"], .columns, .to_dict(orient=...).
    def __getitem__(self, key: Any) -> Any:
        return pd.Series(self) if isinstance(key, str) and key == self.name else super().__getitem__(key)

    @property
    def columns(self) -> pd.Index:
        return pd.Index([self.name])

    def to_dict(self, *args: Any, orient: str | None = None, **kwargs: Any) -> Any:
        frame_or_series = pd.Series(self).to_frame() if orient is not None else pd.Series(self)
        return frame_or_series.to_dict(*args, **({"orient": orient} if orient else {}), **kwargs)


def decode(
    out: torch.Tensor, kind: str, labels: list[Any], params: dict[str, Any] | None, threshold: float | None = None
) -> pd.DataFrame | pd.Series:
    """Network outputs -> `prediction` (a Predictions series; a frame with `probability_<label>` on request for
    classification). `threshold`: two classes, the decision threshold on P(labels[1]) chosen at training
    (probabilities unchanged)."""
    if kind == REGRESSION:  # one column per output: `prediction`, or prediction_0, prediction_1, ...
        flat = out.reshape(len(out), -1).double().numpy()
        if flat.shape[1] == 1:
            return pd.DataFrame({"prediction": flat[:, 0]})
        return pd.DataFrame({f"prediction_{i}": flat[:, i] for i in range(flat.shape[1])})
    if out.shape[-1] == 1:
        positive = torch.sigmoid(out.squeeze(-1))
        probs = torch.stack([1 - positive, positive], dim=-1).numpy()
    else:
        probs = torch.softmax(out, dim=-1).numpy()
    names = np.asarray(labels, dtype=object)
    chosen = probs.argmax(axis=1) if threshold is None or len(labels) != 2 else (probs[:, 1] > threshold).astype(int)
    predicted = names[chosen].tolist()
    if not (params or {}).get(PROBABILITIES_PARAM):
        return Predictions(predicted, name="prediction")
    result = pd.DataFrame({"prediction": predicted})
    for i, label in enumerate(labels):
        result[f"probability_{label}"] = probs[:, i]
    return result


class TabularPredictor:
    """Raw rows in, predictions out. Preprocessing and the network travel together."""

    def __init__(self, network: torch.nn.Module, pre: Preprocessor) -> None:
        self.network = network.eval()
        self.pre = pre
        self.kind = pre.task

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        x = torch.from_numpy(self.pre.transform(frame))
        with torch.inference_mode():
            out = self.network(x).float()
        if self.pre.task == REGRESSION:
            return pd.DataFrame({"prediction": self.pre.decode_regression(out.squeeze(-1).double().numpy())})
        return decode(out, CLASSIFICATION, self.pre.labels, params, getattr(self.pre, "threshold", None))


class TensorPredictor:
    """Numeric columns in (one per element of an example, in order), reshaped to `shape`; predictions out."""

    def __init__(self, network: torch.nn.Module, shape: list[int], kind: str, labels: list[Any]) -> None:
        self.network, self.shape, self.kind, self.labels = network.eval(), list(shape), kind, labels

    @property
    def columns(self) -> list[str]:
        return [f"x{i}" for i in range(int(np.prod(self.shape)))]

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            missing = [c for c in self.columns if c not in data.columns]
            if missing:
                raise InputError(f"input is missing columns {missing[:5]}; expected x0..x{len(self.columns) - 1}")
            values = data[self.columns].to_numpy(dtype=np.float32)
        else:
            values = np.asarray(data, dtype=np.float32)
        if values.size % len(self.columns):
            raise InputError(f"each example has {len(self.columns)} values (shape {self.shape}); got {values.shape}")
        x = torch.from_numpy(np.array(values, dtype=np.float32).reshape(-1, *self.shape))  # a copy: writable
        with torch.inference_mode():
            out = self.network(x).float()
        return decode(out, self.kind, self.labels, params)

    def example(self, x: torch.Tensor) -> pd.DataFrame:
        """Input rows for a batch of examples (the model's signature and input example)."""
        flat = x.reshape(len(x), -1).double().numpy()
        return pd.DataFrame(flat, columns=self.columns)
