"""Small generated text tables: short reviews whose words carry the label (or the score), with noise words."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from mlproj.models.text import EmbeddingBag

GOOD = ["great", "excellent", "lovely", "superb", "enjoyed", "fantastic"]
BAD = ["awful", "boring", "terrible", "waste", "dull", "poor"]
FILLER = ["the", "film", "plot", "actors", "was", "a", "and", "it", "really", "story", "music", "ending", "!", ","]


def reviews_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """`review` (text), `sentiment` (pos/neg, from the words), `score` (a number, from the words), `id`."""
    rng = np.random.default_rng(seed)
    texts, labels, scores = [], [], []
    for _ in range(rows):
        good, bad = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        words = [*rng.choice(GOOD, good), *rng.choice(BAD, bad), *rng.choice(FILLER, int(rng.integers(3, 12)))]
        rng.shuffle(words)
        text = " ".join(words)
        texts.append(text.capitalize() if rng.random() < 0.5 else text.upper())
        scores.append(round(2.0 * (good - bad) + float(rng.normal(0, 0.3)), 2))
        labels.append("pos" if good > bad or (good == bad and rng.random() < 0.5) else "neg")
    return pd.DataFrame({"id": range(rows), "review": texts, "sentiment": labels, "score": scores})


class SlowEmbeddingBag(EmbeddingBag):
    """The text baseline, `delay` seconds slower per batch: paces a run so that a test can act mid-run."""

    def __init__(self, in_features: int, out_features: int, delay: float = 0.01, **kwargs) -> None:
        super().__init__(in_features, out_features, **kwargs)
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return super().forward(x)
