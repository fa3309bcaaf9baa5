"""A small CNN for 1x8x8 digits, as a plain LightningModule: it builds its network from its own arguments,
configures its own optimizer, and logs `train_loss`, `val_loss`, `val_acc` and `test_acc` with self.log."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class DigitsCNN(pl.LightningModule):
    def __init__(self, channels: int = 16, dropout: float = 0.1, lr: float = 2e-3, num_classes: int = 10) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr  # read by configure_optimizers (and set by Lightning's LR finder)
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels * 2 * 4 * 4, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss_and_acc(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), (logits.argmax(dim=-1) == y).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss_and_acc(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._loss_and_acc(batch)
        self.log_dict({"val_loss": loss, "val_acc": acc}, on_epoch=True, prog_bar=True)

    def test_step(self, batch, batch_idx):
        loss, acc = self._loss_and_acc(batch)
        self.log_dict({"test_loss": loss, "test_acc": acc}, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)
