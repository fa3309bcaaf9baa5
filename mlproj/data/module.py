"""mlproj's tables as a LightningDataModule, so every run hands Lightning a data module (`trainer.fit(module,
datamodule=...)`), whoever wrote it. Its `batch_size` is the source's: the batch-size finder sets it, and the
loaders made after read it."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from mlproj.data.base import DataSource


class TablesModule(pl.LightningDataModule):
    def __init__(self, source: DataSource, prepared: Any, seed: int, steps_per_chunk: int) -> None:
        super().__init__()
        self.source, self.prepared, self.seed = source, prepared, seed
        self.chunk = steps_per_chunk  # minibatches per training step (the tuner sets 1 while it searches)

    @property
    def batch_size(self) -> int:
        return self.source.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.source.batch_size = value

    # In the checkpoint: a resumed run goes on at the batch size the batch-size finder chose at its start.
    def state_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_size = state.get("batch_size", self.batch_size)

    def _loader(self, split: str) -> Any:
        # Made afresh per call (cheap: in-memory tables are views of the same tensors), so a new batch size or
        # chunking applies; a streamed table opens a new DataLoader.
        return self.source.loaders(self.prepared, self.seed, self.chunk)[split]

    def train_dataloader(self) -> Any:
        return self._loader("train")

    def val_dataloader(self) -> Any:
        return self._loader("val")

    def test_dataloader(self) -> Any:
        return self._loader("test")
