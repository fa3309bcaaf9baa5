"""The packaged model of a text table: a DataFrame with the text column in, labels or values out.

The JSON's `inputs` ({"kind": "text", ...}, mlproj.data.text.TextPreprocessor.inputs) holds the vocabulary
and row length; untrusted data, checked field by field before use. Light to import (serving imports it).
"""

from __future__ import annotations

from typing import Any

import torch

from mlproj.data.text import TextPreprocessor
from mlproj.packaging.predictors import TabularPredictor


class TextPredictor(TabularPredictor):
    """Raw rows in (the text column; other columns ignored), token ids through the network, predictions out in
    the target's units or labels (`probabilities` on request, as for tables)."""

    @classmethod
    def from_meta(cls, network: torch.nn.Module, meta: dict[str, Any]) -> TextPredictor:
        labels = meta.get("labels") or []
        return cls(network, TextPreprocessor.from_inputs(meta["inputs"], str(meta.get("kind")), labels))
