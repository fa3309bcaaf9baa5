"""scikit-learn's digits as 1x8x8 float images in [0, 1], split 70/15/15 reproducibly and stratified."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class DigitsImages(pl.LightningDataModule):
    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        self.num_classes = 10
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # Lightning calls setup for fit and again for test
            return
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(bunch.target, dtype=torch.long)
        index = list(range(len(y)))
        train, rest = train_test_split(index, test_size=0.3, random_state=self.seed, stratify=y)
        val, test = train_test_split(rest, test_size=0.5, random_state=self.seed, stratify=y[rest])
        for name, rows in (("train", train), ("val", val), ("test", test)):
            self.splits[name] = TensorDataset(x[rows], y[rows])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=256)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=256)
