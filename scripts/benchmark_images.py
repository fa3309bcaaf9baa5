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
import platform
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch
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


def raw_loop(x: torch.Tensor, y: torch.Tensor, pre, batch: int, epochs: int, device: str) -> float:
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
    _sync(device)
    began = time.perf_counter()
    for _ in range(epochs):
        epoch()
    _sync(device)
    return n * epochs / (time.perf_counter() - began)


def mlproj_path(x: torch.Tensor, y: torch.Tensor, pre, batch: int, epochs: int, device: str) -> float:
    from benchmark import EpochTimer, _adam
    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    from mlproj.config.schema import TrainerConfig
    from mlproj.data.images import ImageBatches
    from mlproj.training.trainer import RunLogger, build_task, build_trainer, steps_per_chunk

    cfg = OmegaConf.structured(TrainerConfig)
    cfg.accelerator = "gpu" if device == "cuda" else "cpu"
    cfg.devices, cfg.max_epochs, cfg.early_stopping, cfg.progress_bar = 1, epochs + 1, False, "none"
    cfg.limit_val_batches = 1  # training throughput: validation is one batch per epoch
    module = build_task(cfg, make_model(), "classification", 10, optimizer=_adam)
    train = ImageBatches(x, y, batch, shuffle=True, chunk=steps_per_chunk(cfg), pre=pre, augment=[])
    val = ImageBatches(x[:batch], y[:batch], batch, pre=pre, augment=[])
    with TemporaryDirectory(prefix="mlproj-bench-") as tmp:
        work = Path(tmp)
        client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
        run_id = client.create_run(client.create_experiment("benchmark")).info.run_id
        timer, logger = EpochTimer(device), RunLogger(client, run_id)
        trainer = build_trainer(cfg, "classification", logger, work / "ckpt", quiet=True, extra_callbacks=[timer])
        trainer.fit(module, train, val)
        logger.flush()
        client.set_terminated(run_id)
    return len(x) * timer.epochs / timer.seconds


def main(args) -> None:
    rows = args.rows or (5_000 if args.quick else 20_000)
    epochs = args.epochs or (1 if args.quick else 3)
    batch = 64 if args.batch == 256 else args.batch  # 256 is the table family's default
    x, y, pre = make_images(rows)
    rounds = []
    for _ in range(args.repeat):  # in rotation: a busy neighbour slows both of a round alike
        rounds.append(
            {
                name: fn(x, y, pre, batch, epochs, args.device)
                for name, fn in (("raw", raw_loop), ("mlproj", mlproj_path))
            }
        )
    results = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    each = [r["mlproj"] / r["raw"] for r in rounds]
    print(f"{rows} digit images 1x8x8, CNN channels {CHANNELS}, batch {batch}, Adam, {epochs} timed epoch(s), "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}"
          f"{f', median of {args.repeat} rounds' if args.repeat > 1 else ''}")  # fmt: skip
    for name, rate in results.items():
        print(f"  {name:<10} {rate:>10,.0f} images/s   {rate / results['raw']:.2f}x raw")
    if args.repeat > 1:
        print(f"  mlproj_vs_raw: rounds {', '.join(f'{v:.2f}' for v in each)} (median {statistics.median(each):.2f})")
    out = {"family": "image", "mlproj_vs_raw": round(statistics.median(each), 3)}
    print(json.dumps({**out, "samples_per_s": {k: round(v) for k, v in results.items()}}))
