"""Training throughput, side by side in one process: a hand-written loop, mlproj's path, conventional Lightning.

Same data (synthetic regression, in memory), model (MLP 32→256→256→1), batch size, optimizer (Adam 1e-3)
and epochs for all three; only training epochs are timed (after one warm-up epoch each):
  (a) raw       a hand-written PyTorch loop over index slices of a per-epoch permutation
  (b) mlproj    mlproj's production path, built by mlproj.training.trainer as mlproj.train does (TrainerConfig
                defaults: chunked manual optimization, epoch-level metrics, the MLflow run logger)
  (c) lightning DataLoader(TensorDataset(...), shuffle=True), automatic optimization, per-step
                torchmetrics logging (self.log(..., on_step=True)) written every step (log_every_n_steps=1,
                the pipeline the issue measured), Lightning's default logger and checkpoint; and the same
                with Lightning's default log_every_n_steps=50 (lightning_dataloader_log50)
The last line is one JSON object with the ratios (with --repeat, medians of the rounds' ratios).

    python scripts/benchmark.py            # 200k rows, 3 timed epochs
    python scripts/benchmark.py --quick    # 50k rows, 1 timed epoch (well under a minute on 2 cores)
    python scripts/benchmark.py --device cuda
    python scripts/benchmark.py --steps-per-chunk 1 4   # also mlproj with trainer.steps_per_chunk=1 and 4
    python scripts/benchmark.py --repeat 3   # three rounds in rotation, medians (for a shared, noisy machine)
    python scripts/benchmark.py --family image --repeat 3   # the same CNN: raw loop vs mlproj's image path
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
import warnings
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F


def make_data(rows: int, features: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    w = torch.randn(features, 1, generator=gen)
    y = (x @ w).squeeze(-1) + 0.1 * torch.randn(rows, generator=gen)
    return x, y


def make_model(features: int, seed: int = 0) -> nn.Module:
    from mlproj.models import MLP

    torch.manual_seed(seed)
    return MLP(features, 1, hidden_sizes=[256, 256], dropout=0.0)


def raw_loop(x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, device: str) -> float:
    model = make_model(x.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = x.to(device), y.to(device)
    n = len(x)

    def epoch() -> None:
        order = torch.randperm(n, device=device)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            loss = F.mse_loss(model(x[idx]).squeeze(-1), y[idx])
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


class EpochTimer:
    """Sums wall time of training epochs after the first (warm-up), as a Lightning callback."""

    def __new__(cls, device: str):  # built lazily: Lightning is imported only when used
        import pytorch_lightning as pl

        class _Timer(pl.Callback):
            def __init__(self) -> None:
                self.seconds, self.epochs, self._t = 0.0, 0, 0.0

            def on_train_epoch_start(self, trainer, module) -> None:
                _sync(device)
                self._t = time.perf_counter()

            def on_train_epoch_end(self, trainer, module) -> None:
                _sync(device)
                if trainer.current_epoch > 0:
                    self.seconds += time.perf_counter() - self._t
                    self.epochs += 1

        return _Timer()


def mlproj_path(
    x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, device: str, steps_per_chunk: int | None = None
) -> float:
    """Built as mlproj.train builds a run: the trainer config's defaults, the run logger into a sqlite store."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    from mlproj.config.schema import TrainerConfig
    from mlproj.training.trainer import RunLogger, build_batches, build_task, build_trainer

    cfg = OmegaConf.structured(TrainerConfig)
    cfg.accelerator = "gpu" if device == "cuda" else "cpu"
    cfg.devices, cfg.max_epochs, cfg.early_stopping, cfg.progress_bar = 1, epochs + 1, False, "none"
    cfg.limit_val_batches = 1  # training throughput: validation is one batch per epoch
    cfg.steps_per_chunk = steps_per_chunk  # None: the default (automatic)
    module = build_task(cfg, make_model(x.shape[1]), "regression", 0, optimizer=_adam)
    loaders = build_batches(cfg, {"train": (x, y), "val": (x[:batch], y[:batch])}, batch, shuffle=True)
    with TemporaryDirectory(prefix="mlproj-bench-") as tmp:  # a store and checkpoints, gone afterwards
        work = Path(tmp)
        client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
        run_id = client.create_run(client.create_experiment("benchmark")).info.run_id
        timer = EpochTimer(device)
        logger = RunLogger(client, run_id)
        trainer = build_trainer(cfg, "regression", logger, work / "ckpt", quiet=True, extra_callbacks=[timer])
        trainer.fit(module, loaders["train"], loaders["val"])
        logger.flush()
        client.set_terminated(run_id)
    return len(x) * timer.epochs / timer.seconds


def _adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def lightning_dataloader(
    x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, device: str, log_every_n_steps: int = 1
) -> float:
    """The conventional pipeline the issue measured: per-step torchmetrics logging, every step reaching the
    logger (`log_every_n_steps=1`); with 50 (Lightning's default) only every 50th step is written."""
    from tempfile import TemporaryDirectory

    import pytorch_lightning as pl
    import torchmetrics
    from torch.utils.data import DataLoader, TensorDataset

    class Conventional(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model(x.shape[1])
            self.mse = torchmetrics.MeanSquaredError()

        def training_step(self, b, i):
            xb, yb = b
            pred = self.model(xb).squeeze(-1)
            loss = F.mse_loss(pred, yb)
            self.mse(pred, yb)
            self.log("train_loss", loss, on_step=True, prog_bar=False)
            self.log("train_mse", self.mse, on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    timer = EpochTimer(device)
    tmp = TemporaryDirectory(prefix="lightning-bench-")
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=epochs + 1,
        # Lightning's defaults (its default logger, CSVLogger without tensorboard; a checkpoint per epoch),
        # written to a temporary folder; no progress bar or model summary, as mlproj.
        default_root_dir=tmp.name,
        log_every_n_steps=log_every_n_steps,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    trainer.fit(Conventional(), loader)
    tmp.cleanup()
    return len(x) * timer.epochs / timer.seconds


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50k rows, 1 timed epoch (default: 200k rows, 3 epochs)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rows", type=int, help="rows of the synthetic table (overrides --quick's)")
    p.add_argument("--epochs", type=int, help="timed epochs, after one warm-up epoch (overrides --quick's)")
    p.add_argument("--batch", type=int, default=256, help="batch size for every pipeline")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of every pipeline, in rotation; medians are reported")
    p.add_argument("--steps-per-chunk", type=int, nargs="*", default=[], help="also time mlproj with these K")
    p.add_argument("--family", default="table", choices=["table", "image"], help="image: scripts/benchmark_images.py")
    args = p.parse_args()
    rows = args.rows or (50_000 if args.quick else 200_000)
    epochs = args.epochs or (1 if args.quick else 3)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    if args.family == "image":
        import benchmark_images

        return benchmark_images.main(args)
    x, y = make_data(rows, 32)
    names = [
        ("raw", raw_loop),
        ("mlproj", mlproj_path),
        ("lightning_dataloader", lightning_dataloader),
        ("lightning_dataloader_log50", partial(lightning_dataloader, log_every_n_steps=50)),
    ]
    rounds: list[dict[str, float]] = []
    for _ in range(args.repeat):  # rounds in rotation: a busy neighbour slows all three of a round alike
        rates = {name: fn(x, y, args.batch, epochs, args.device) for name, fn in names}
        for k in args.steps_per_chunk:
            rates[f"mlproj_steps_per_chunk={k}"] = mlproj_path(x, y, args.batch, epochs, args.device, k)
        rounds.append(rates)
    results = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    ratio = {
        "mlproj_vs_raw": statistics.median(r["mlproj"] / r["raw"] for r in rounds),
        "mlproj_vs_lightning_dataloader": statistics.median(r["mlproj"] / r["lightning_dataloader"] for r in rounds),
        "mlproj_vs_lightning_dataloader_log50": statistics.median(
            r["mlproj"] / r["lightning_dataloader_log50"] for r in rounds
        ),
    }
    print(f"{rows} rows x 32 features, MLP 32-256-256-1, batch {args.batch}, Adam, {epochs} timed epoch(s), "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}"
          f"{f', median of {args.repeat} rounds' if args.repeat > 1 else ''}")  # fmt: skip
    for name, rate in results.items():
        print(f"  {name:<28} {rate:>10,.0f} samples/s   {rate / results['raw']:.2f}x raw")
    print("  (lightning_dataloader logs every step, as the issue's pipeline; _log50: Lightning's default, every 50)")
    if args.repeat > 1:
        for key in ratio:
            each = [r["mlproj"] / r[key.rpartition("_vs_")[2]] for r in rounds]
            print(f"  {key}: rounds {', '.join(f'{v:.2f}' for v in each)} (median {ratio[key]:.2f})")
    print(
        json.dumps(
            {
                "mlproj_vs_raw": round(ratio["mlproj_vs_raw"], 3),
                "mlproj_vs_lightning_dataloader": round(ratio["mlproj_vs_lightning_dataloader"], 3),
                "mlproj_vs_lightning_dataloader_log50": round(ratio["mlproj_vs_lightning_dataloader_log50"], 3),
                "samples_per_s": {k: round(v) for k, v in results.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
