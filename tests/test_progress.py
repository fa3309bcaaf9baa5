"""The Rich progress bar counts optimizer steps (not chunks), shows their real rate, 1-based epochs, the
monitored metric, and no `v_num`."""

from __future__ import annotations

import io
import re
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from mlproj.config.schema import TrainerConfig
from mlproj.models import MLP
from mlproj.training.progress import StepProgressBar
from mlproj.training.trainer import RunLogger, build_batches, build_task, progress_callbacks

ROWS, BATCH = 200, 16  # 13 minibatches per epoch: one chunk (steps_per_chunk is 32 by default)


def test_the_rich_bar_counts_optimizer_steps_with_their_rate(tmp_path: Path) -> None:
    cfg = OmegaConf.structured(TrainerConfig)
    cfg.accelerator, cfg.devices, cfg.max_epochs = "cpu", 1, 2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, 4, generator=gen)
    y = x.sum(1)
    loaders = build_batches(cfg, {"train": (x, y), "val": (x[:50], y[:50])}, batch_size=BATCH, seed=0)
    assert loaders["train"].chunk > 1 and len(loaders["train"]) == 1  # what Lightning alone would count: 1/1
    module = build_task(cfg, MLP(4, 1, hidden_sizes=[8]), "regression", 0, optimizer=partial(torch.optim.SGD, lr=0.01))
    screen = io.StringIO()
    (bar,) = progress_callbacks("rich", 2, "val_loss")
    assert isinstance(bar, StepProgressBar)
    bar._console_kwargs = {"file": screen, "force_terminal": True, "width": 200}
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=RunLogger(None, ""),  # a logger with a version: Lightning's bar would show v_num
        callbacks=[bar],
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, loaders["train"], loaders["val"])
    shown = screen.getvalue()
    assert "Epoch 2/2" in shown and "Epoch 0/" not in shown  # 1-based, out of max_epochs
    assert "13/13" in shown and "1/1 " not in shown  # minibatches: one optimizer step each
    rates = [float(r.replace(",", "")) for r in re.findall(r"([\d,]+) steps/s", shown)]
    assert rates and max(rates) > 0 and "it/s" not in shown
    assert "val_loss" in shown and "v_num" not in shown
