"""The data contract: what the train path needs from any `data._target_`.

Two kinds of class are accepted (mlproj.config.families, family "data"):
- a plain `LightningDataModule` (setup + train/val/test loaders yielding `(x, y)` or anything the user's task
  takes): mlproj reads, if present, `num_classes` (classification with that many classes; absent: regression)
  and `batch_size` (the batch-size finder); an input example for the model's signature is the first training batch;
- a `DataSource` (mlproj's own tables): it hands mlproj a table, splits it and fits the preprocessing before any
  side effect, so the packaged model takes raw rows (its state is plain JSON, see preprocess.py).

Nothing here imports Lightning: the built-in sources are checked and built at startup, cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlproj.errors import ConfigError

if TYPE_CHECKING:
    from mlproj.data.prepare import PreparedData


class DataSource:
    """mlproj's data base: a source of one table, prepared (split, preprocessing fitted) by `prepare()`.

    Subclasses are dataclasses whose fields are their config keys (checked against the signature at startup)."""

    streaming: bool = False  # True: batches are streamed (only a sample is in memory)

    def prepare(self) -> PreparedData:
        raise NotImplementedError

    def loaders(self, prepared: PreparedData, seed: int, steps_per_chunk: int) -> dict[str, Any]:
        """The train/val/test iterables over `prepared` (the data module wraps them for Lightning)."""
        raise NotImplementedError

    def metrics(self, prepared: Any) -> dict[str, Any]:
        """Metrics this kind of data brings to the built-in task, besides its kind's own: name -> a factory of a
        torchmetrics.Metric (one per stage), logged as `{stage}_{name}`; their directions are torchmetrics'
        `higher_is_better` (declared in mlproj.metrics at startup). Forecasting's MASE needs the training series."""
        return {}


SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's random_state range


def check_seed(key: str, value: int) -> None:
    if not 0 <= value <= SEED_MAX:
        raise ConfigError(f"{key}={value} must be in [0, {SEED_MAX}]")


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """The keys every randomly split source shares: each part a fraction, at least 10% left for training."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ConfigError(f"data.{key}={value} must be between 0 and 1 (exclusive)")
    if val_fraction + test_fraction >= 0.9:
        raise ConfigError("data.val_fraction + data.test_fraction must leave at least 10% for training")
