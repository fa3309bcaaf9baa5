"""Training throughput, side by side in one process: a hand-written loop, mlproj's path, conventional Lightning.

Same data (synthetic regression, in memory), model (MLP 32→256→256→1), batch size, optimizer (Adam 1e-3)
and epochs for all three; the timed window is every epoch after a warm-up one, up to the end of training
(so epoch-end work, validation, checkpoints and logging are in it), in wall and process CPU time:
  (a) raw       a hand-written PyTorch loop over index slices of a per-epoch permutation
  (b) mlproj    mlproj's production path, built by mlproj.training.trainer as mlproj.train does (TrainerConfig
                defaults: chunked manual optimization, epoch-level metrics, the MLflow run logger)
  (c) lightning DataLoader(TensorDataset(...), shuffle=True), automatic optimization, per-step
                torchmetrics logging (self.log(..., on_step=True)) written every step (log_every_n_steps=1,
                the pipeline the issue measured), Lightning's default logger and checkpoint; and the same
                with Lightning's default log_every_n_steps=50 (lightning_dataloader_log50)
On CUDA also: mlproj with trainer.cuda_graphs=true, and raw / mlproj / both under bf16-mixed.
Rounds are interleaved (scripts/bench_runner.py): per pipeline and per ratio the median of the rounds and
their spread, flagged when too wide to trust; then where an mlproj epoch's time goes (epoch_breakdown.py). The
last line is one JSON object: the ratios' medians (wall), CPU-time ratios, ranges, the breakdown, commit,
machine, load and command.

    python scripts/benchmark.py            # 200k rows, 3 timed epochs, 5 rounds, 1 pinned thread
    python scripts/benchmark.py --quick    # 50k rows, 1 timed epoch
    python scripts/benchmark.py --device cuda --skip-lightning --repeat 3
    python scripts/benchmark.py --steps-per-chunk 1 4   # also mlproj with trainer.steps_per_chunk=1 and 4
    python scripts/benchmark.py --family image   # the same CNN: raw loop vs mlproj's image path
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from functools import partial

import torch
from bench_runner import Stopwatch, Timed, header, pin_threads, run_rounds, summarise
from epoch_breakdown import print_breakdown
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


def raw_loop(x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, device: str) -> Timed:
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
    watch = Stopwatch(partial(_sync, device))
    watch.start()
    for _ in range(epochs):
        epoch()
    watch.stop()
    return watch.result(n * epochs)


def mlproj_path(
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    epochs: int,
    device: str,
    steps_per_chunk: int | None = None,
    breakdowns: list | None = None,
    **trainer: object,
) -> Timed:
    """Built as mlproj.train builds a run: the trainer config's defaults (plain progress lines, as a run without a
    terminal prints them, into a buffer here), the run logger into a sqlite store. `breakdowns`: where to append
    the epoch's parts (epoch_breakdown); `trainer`: other TrainerConfig keys (cuda_graphs, precision)."""
    from mlproj.config.schema import TrainerConfig
    from mlproj.training.trainer import build_batches, build_task

    cfg = _trainer_cfg(TrainerConfig, device, epochs, steps_per_chunk=steps_per_chunk, **trainer)
    module = build_task(cfg, make_model(x.shape[1]), "regression", 0, optimizer=_adam)
    loaders = build_batches(cfg, {"train": (x, y), "val": (x[:batch], y[:batch])}, batch, shuffle=True)
    timer = fit_mlproj(cfg, module, loaders["train"], loaders["val"], "regression", device)
    if breakdowns is not None:
        breakdowns.append(timer.per_epoch_ms())
    return timer.watch.result(len(x) * timer.epochs)


def _trainer_cfg(schema: type, device: str, epochs: int, **keys: object):
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(schema)
    cfg.accelerator = "gpu" if device == "cuda" else "cpu"
    cfg.devices, cfg.max_epochs, cfg.early_stopping, cfg.progress_bar = 1, epochs + 1, False, "plain"
    cfg.limit_val_batches = 1  # training throughput: validation is one batch per epoch
    for k, v in keys.items():
        cfg[k] = v
    return cfg


def fit_mlproj(cfg, module, train, val, task: str, device: str):
    """trainer.fit as a run does it (checkpoints, the run logger into a sqlite store); returns the TimedEpochs."""
    import contextlib
    import io
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from epoch_breakdown import TimedEpochs
    from mlflow.tracking import MlflowClient

    from mlproj.training.trainer import RunLogger, build_trainer

    with TemporaryDirectory(prefix="mlproj-bench-") as tmp:  # a store and checkpoints, gone afterwards
        work = Path(tmp)
        client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
        run_id = client.create_run(client.create_experiment("benchmark")).info.run_id
        timer = TimedEpochs(partial(_sync, device))
        logger = RunLogger(client, run_id)
        trainer = build_trainer(cfg, task, logger, work / "ckpt", extra_callbacks=[timer])
        timer.attach(trainer, module, logger)
        with contextlib.redirect_stdout(io.StringIO()):  # the progress lines are paid for, not shown
            trainer.fit(module, train, val)
        logger.flush()
        client.set_terminated(run_id)
    return timer


def _adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def lightning_dataloader(
    x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, device: str, log_every_n_steps: int = 1
) -> Timed:
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

    from epoch_breakdown import TimedEpochs

    timer = TimedEpochs(partial(_sync, device))
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
    return timer.watch.result(len(x) * timer.epochs)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def raw_bf16(x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, device: str) -> Timed:
    """The hand-written loop under bf16 autocast (what trainer.precision=bf16-mixed does)."""
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        return raw_loop(x, y, batch, epochs, device)


def pipelines(args, x, y, epochs: int, breakdowns: list) -> tuple[dict, list[tuple[str, str]]]:
    """name -> pipeline, and the ratios to report (mlproj's variants against the raw loop of the same precision)."""
    common = (x, y, args.batch, epochs, args.device)
    chosen = {"raw": partial(raw_loop, *common), "mlproj": partial(mlproj_path, *common, breakdowns=breakdowns)}
    ratios = [("mlproj", "raw")]
    if not args.skip_lightning:
        chosen["lightning_dataloader"] = partial(lightning_dataloader, *common)
        chosen["lightning_dataloader_log50"] = partial(lightning_dataloader, *common, log_every_n_steps=50)
        ratios += [("mlproj", "lightning_dataloader"), ("mlproj", "lightning_dataloader_log50")]
    for k in args.steps_per_chunk:
        chosen[f"mlproj_steps_per_chunk={k}"] = partial(mlproj_path, *common, k)
        ratios.append((f"mlproj_steps_per_chunk={k}", "raw"))
    if args.device == "cuda":  # the GPU path: CUDA graphs, bf16, both
        chosen["mlproj_cuda_graphs"] = partial(mlproj_path, *common, cuda_graphs=True)
        chosen["raw_bf16"] = partial(raw_bf16, *common)
        chosen["mlproj_bf16"] = partial(mlproj_path, *common, precision="bf16-mixed")
        chosen["mlproj_cuda_graphs_bf16"] = partial(mlproj_path, *common, cuda_graphs=True, precision="bf16-mixed")
        ratios += [("mlproj_cuda_graphs", "raw"), ("mlproj_bf16", "raw_bf16"), ("mlproj_cuda_graphs_bf16", "raw_bf16")]
    return chosen, ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50k rows, 1 timed epoch (default: 200k rows, 3 epochs)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rows", type=int, help="rows of the synthetic table (overrides --quick's)")
    p.add_argument("--epochs", type=int, help="timed epochs, after one warm-up epoch (overrides --quick's)")
    p.add_argument("--batch", type=int, default=256, help="batch size for every pipeline")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads, pinned (default 1; 0: torch's)")
    p.add_argument("--repeat", type=int, default=5, help="rounds of every pipeline, interleaved (default 5)")
    p.add_argument("--steps-per-chunk", type=int, nargs="*", default=[], help="also time mlproj with these K")
    p.add_argument("--skip-lightning", action="store_true", help="only raw and mlproj (and the GPU variants)")
    p.add_argument("--family", default="table", choices=["table", "image"], help="image: scripts/benchmark_images.py")
    args = p.parse_args()
    rows = args.rows or (50_000 if args.quick else 200_000)
    epochs = args.epochs or (1 if args.quick else 3)
    warnings.filterwarnings("ignore")
    pin_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    info = header()
    if args.family == "image":
        import benchmark_images

        return benchmark_images.main(args, info)
    x, y = make_data(rows, 32)
    breakdowns: list[dict[str, float]] = []
    chosen, ratios = pipelines(args, x, y, epochs, breakdowns)
    print(f"{rows} rows x 32 features, MLP 32-256-256-1, batch {args.batch}, Adam, {epochs} timed epoch(s) after "
          f"a warm-up one, device {args.device}, {args.repeat} interleaved round(s), median [min-max, IQR]")  # fmt: skip
    rounds = run_rounds(chosen, args.repeat)
    summary = summarise(rounds, ratios)
    if not args.skip_lightning:
        print(
            "  (lightning_dataloader logs every step, as the issue's pipeline; _log50: Lightning's default, every 50)"
        )
    breakdown = print_breakdown(breakdowns)
    print(json.dumps(result_line(summary, breakdown, info)))


def result_line(summary: dict, breakdown: dict[str, float], info: dict[str, str]) -> dict:
    """The last line: each ratio's median (wall), then CPU-time ratios, spreads, the breakdown and the header."""
    ratios = summary["ratios"]
    out: dict = {k: round(v["wall"]["median"], 3) for k, v in ratios.items()}
    out["samples_per_s"] = {k: round(v["wall"]["median"]) for k, v in summary["pipelines"].items()}
    out["cpu_ratios"] = {k: round(v["cpu"]["median"], 3) for k, v in ratios.items()}
    out["ratio_ranges"] = {
        k: [round(v[t][e], 3) for t in ("wall", "cpu") for e in ("min", "max")] for k, v in ratios.items()
    }
    out["too_wide"] = summary["too_wide"]
    out["epoch_ms"] = {k: round(v, 2) for k, v in breakdown.items()}
    out["rounds"] = summary["rounds"]
    return {**out, **info}


if __name__ == "__main__":
    main()
