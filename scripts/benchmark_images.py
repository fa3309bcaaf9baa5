"""The image family of scripts/benchmark.py (`--family image`): the same CNN trained by a hand-written loop and
by mlproj's on-device image path, side by side in one process.

Data: scikit-learn's digits as 1x8x8 uint8 images, tiled to `rows` images. Model: mlproj's CNN (model=cnn,
channels [32, 64]), batch 64 (data.batch_size's default), Adam 1e-3, cross-entropy; one warm-up epoch each,
then timed training epochs:
  (a) raw     float32 images, normalised once, on the device; index slices of a per-epoch permutation
  (b) mlproj  mlproj's production path for images: ImageBatches (uint8 on the device, converted and normalised
              per chunk of minibatches), SupervisedTask's chunked manual optimization, torchmetrics per epoch,
              the MLflow run logger; built with mlproj.training.trainer as mlproj.train builds a run
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import torch
from bench_runner import Stopwatch, Timed, run_rounds, summarise
from epoch_breakdown import print_breakdown
from torch.nn import functional as F

CHANNELS = [32, 64]


def make_images(rows: int) -> tuple[torch.Tensor, torch.Tensor, object]:
    """uint8 (rows, 1, 8, 8) digits (tiled), their labels, and the normalisation fitted on them."""
    from mlproj.data.images import DigitsImages
    from mlproj.data.pixels import ImagePreprocessing

    images = DigitsImages().load()
    reps = -(-rows // len(images.labels))
    pixels = np.tile(images.pixels, (reps, 1, 1, 1))[:rows]
    labels = np.tile(images.labels.to_numpy(), reps)[:rows]
    pre = ImagePreprocessing.fit(pixels, list(range(10)))
    return torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64)), pre


def make_model(seed: int = 0) -> torch.nn.Module:
    from mlproj.models import CNN

    torch.manual_seed(seed)
    return CNN(64, 10, in_shape=[1, 8, 8], channels=CHANNELS)


def raw_loop(x: torch.Tensor, y: torch.Tensor, pre, batch: int, epochs: int, device: str) -> Timed:
    from benchmark import _sync

    model = make_model().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xf, y = pre.normalise(x).to(device), y.to(device)
    n = len(xf)

    def epoch() -> None:
        order = torch.randperm(n, device=device)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(xf[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch()  # warm-up
    watch = Stopwatch(partial(_sync, device))
    watch.start()
    for _ in range(epochs):
        epoch()
    watch.stop()
    return watch.result(n * epochs)


def mlproj_path(
    x: torch.Tensor, y: torch.Tensor, pre, batch: int, epochs: int, device: str, breakdowns: list | None = None
) -> Timed:
    from benchmark import _adam, _trainer_cfg, fit_mlproj

    from mlproj.config.schema import TrainerConfig
    from mlproj.data.images import ImageBatches
    from mlproj.training.trainer import build_task, steps_per_chunk

    cfg = _trainer_cfg(TrainerConfig, device, epochs)
    module = build_task(cfg, make_model(), "classification", 10, optimizer=_adam)
    train = ImageBatches(x, y, batch, shuffle=True, chunk=steps_per_chunk(cfg), pre=pre, augment=[])
    val = ImageBatches(x[:batch], y[:batch], batch, pre=pre, augment=[])
    timer = fit_mlproj(cfg, module, train, val, "classification", device)
    if breakdowns is not None:
        breakdowns.append(timer.per_epoch_ms())
    return timer.watch.result(len(x) * timer.epochs)


def main(args, info: dict[str, str]) -> None:
    from benchmark import result_line

    rows = args.rows or (5_000 if args.quick else 20_000)
    epochs = args.epochs or (1 if args.quick else 3)
    batch = 64 if args.batch == 256 else args.batch  # 256 is the table family's default
    x, y, pre = make_images(rows)
    breakdowns: list[dict[str, float]] = []
    common = (x, y, pre, batch, epochs, args.device)
    chosen = {"raw": partial(raw_loop, *common), "mlproj": partial(mlproj_path, *common, breakdowns=breakdowns)}
    print(f"{rows} digit images 1x8x8, CNN channels {CHANNELS}, batch {batch}, Adam, {epochs} timed epoch(s) after a "
          f"warm-up one, device {args.device}, {args.repeat} interleaved round(s), median [min-max, IQR]")  # fmt: skip
    summary = summarise(run_rounds(chosen, args.repeat), [("mlproj", "raw")], unit="images/s")
    breakdown = print_breakdown(breakdowns)
    print(json.dumps({"family": "image", **result_line(summary, breakdown, info)}))
