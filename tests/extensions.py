"""A user's own Lightning code, as written for plain Lightning (nothing mlproj-specific): the extension points'
tests train these through mlproj."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class LinearData(pl.LightningDataModule):
    """y = x·w + noise, 4 features; no num_classes: a regression data module."""

    def __init__(self, rows: int = 240, batch_size: int = 32) -> None:
        super().__init__()
        self.rows, self.batch_size = rows, batch_size
        self.sets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.rows, 4, generator=gen)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(self.rows, generator=gen)
        cut = [int(self.rows * 0.7), int(self.rows * 0.85)]
        for name, rows in zip(
            ("train", "val", "test"), (slice(0, cut[0]), slice(*cut), slice(cut[1], None)), strict=True
        ):
            self.sets[name] = TensorDataset(x[rows], y[rows])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["val"], batch_size=64)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.sets["test"], batch_size=64)


class TinyRegressor(pl.LightningModule):
    """Builds its own network from its arguments (in_features comes from the data); logs with self.log."""

    def __init__(self, in_features: int, hidden: int = 8, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x).squeeze(-1), y.float())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), on_epoch=True)
        self.log("val_score", -self._loss(batch), on_epoch=True)

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch), on_epoch=True)
        self.log("test_score", -self._loss(batch), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class GridCNN(nn.Module):
    """A network that reads its inputs as a square single-channel image (an 8x8 digit, pixel columns in order)."""

    def __init__(self, in_features: int, out_features: int, channels: int = 4) -> None:
        super().__init__()
        self.side = int(in_features**0.5)
        if self.side * self.side != in_features:
            raise ValueError(f"{in_features} inputs are not a square image")
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * in_features, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), 1, self.side, self.side))
