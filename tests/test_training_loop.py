"""The training step: chunks of optimizer steps, step-level metrics, compile, clipping and schedulers.

Runs with a real sqlite MLflow store where a run is involved; the unit-level checks drive Lightning's
Trainer directly (as mlproj.training.trainer builds it) without a store.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from pytorch_lightning.loggers.logger import DummyLogger

from mlproj.config.schema import TrainerConfig
from mlproj.data.batches import TensorBatches
from mlproj.train import run
from mlproj.training.trainer import build_batches, build_task, build_trainer, steps_per_chunk
from tests.conftest import QUICK


def _data(rows: int = 200, features: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    return x, x @ torch.randn(features, generator=gen) + 0.1 * torch.randn(rows, generator=gen)


def _fit(tmp_path: Path, *, optimizer=None, scheduler=None, epochs: int = 1, data=None, callbacks=None, **trainer_keys):
    """Fit a small MLP the way mlproj.train does; returns (module, trainer)."""
    from mlproj.models import MLP

    cfg = OmegaConf.structured(TrainerConfig)
    cfg.accelerator, cfg.devices, cfg.max_epochs, cfg.progress_bar = "cpu", 1, epochs, "none"
    cfg.early_stopping = False
    for key, value in trainer_keys.items():
        cfg[key] = value
    x, y = data or _data()
    torch.manual_seed(0)
    network = MLP(x.shape[1], 1, hidden_sizes=[16], dropout=0.0)
    module = build_task(
        cfg,
        network,
        "regression",
        0,
        optimizer=optimizer or partial(torch.optim.SGD, lr=0.05),
        scheduler=scheduler,
    )
    loaders = build_batches(cfg, {"train": (x, y), "val": (x[:50], y[:50])}, batch_size=16, seed=0)
    trainer = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "ckpt", quiet=True, extra_callbacks=callbacks)
    trainer.fit(module, loaders["train"], loaders["val"])
    return module, trainer


def test_chunks_make_the_same_steps_as_single_minibatches(tmp_path):
    """K minibatches per training step: same minibatches, same order, same weights; global_step counts steps."""
    one, trainer_one = _fit(tmp_path / "a", epochs=2, steps_per_chunk=1)
    many, trainer_many = _fit(tmp_path / "b", epochs=2, steps_per_chunk=5)
    assert trainer_one.global_step == trainer_many.global_step == 2 * math.ceil(200 / 16)
    assert trainer_many.num_training_batches == math.ceil(math.ceil(200 / 16) / 5)
    for a, b in zip(one.model.parameters(), many.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert trainer_one.callback_metrics["train_loss"] == pytest.approx(
        float(trainer_many.callback_metrics["train_loss"])
    )


def test_batch_limits_count_minibatches():
    cfg = OmegaConf.structured(TrainerConfig)
    assert steps_per_chunk(cfg) == 32  # automatic
    for key, value in (("limit_train_batches", 3), ("limit_train_batches", 0.5), ("overfit_batches", 1)):
        limited = cfg.copy()
        limited[key] = value
        assert steps_per_chunk(limited) == 1, key
    batches = TensorBatches(torch.zeros(10, 2), torch.zeros(10), batch_size=3, chunk=2)
    assert len(batches) == 2 and [len(item) for item in batches] == [2, 2]


def test_gradient_clipping_is_applied(tmp_path):
    """Plain SGD with lr=1: one step moves the weights by exactly the clipped gradient."""
    x, y = _data(rows=16)
    data = (x, 100 * y)  # large targets, large gradients
    from mlproj.models import MLP

    torch.manual_seed(0)  # as _fit does: the initial weights
    start = torch.cat([p.detach().flatten() for p in MLP(x.shape[1], 1, hidden_sizes=[16], dropout=0.0).parameters()])
    for clip in (None, 0.01):
        module, _ = _fit(
            tmp_path / str(clip),
            optimizer=partial(torch.optim.SGD, lr=1.0),
            data=data,
            gradient_clip_val=clip,
        )
        moved = torch.cat([p.detach().flatten() for p in module.model.parameters()]) - start
        if clip is None:
            assert moved.norm() > 1.0
        else:
            assert moved.norm() == pytest.approx(clip, rel=1e-3)


def test_schedulers_are_stepped_per_epoch(tmp_path):
    cosine = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=4)
    _, trainer = _fit(tmp_path / "cos", scheduler=cosine, epochs=3)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 4)) / 2)  # three steps of four

    # A learning rate too small to improve val_loss: the plateau scheduler halves it after each flat epoch.
    plateau = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, factor=0.5, patience=0)
    _, trainer = _fit(tmp_path / "plateau", optimizer=partial(torch.optim.SGD, lr=1e-6), scheduler=plateau, epochs=3)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-6 / 4)


def test_step_level_metrics_every_n_steps(make_cfg, store, tmp_path):
    overrides = ["trainer.limit_train_batches=1.0", "trainer.steps_per_chunk=2", "trainer.log_every_n_steps=3"]
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", *overrides)
    result = run(cfg, overrides, tmp_path / "out")

    from mlproj.data.prepare import prepare, resolve_task
    from mlproj.data.sources import load_table

    table = load_table(cfg.data)
    train_rows = len(prepare(table, resolve_task(table, cfg.data), cfg.data).splits["train"].y)
    steps = cfg.trainer.max_epochs * math.ceil(train_rows / cfg.data.batch_size)
    client = MlflowClient(store)
    history = client.get_metric_history(result.run_id, "step_train_loss")
    assert [m.step for m in history] == list(range(3, steps + 1, 3))  # the global (optimizer) step
    assert all(math.isfinite(m.value) for m in history)
    assert {"step_train_rmse", "step_train_r2"} <= set(client.get_run(result.run_id).data.metrics)
    assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [0, 1]  # per epoch, as ever

    from mlproj.tracking.runs import epoch_history

    assert not [k for k in epoch_history(client, result.run_id) if k.startswith("step_")]


@pytest.mark.slow
def test_compiled_training_packages_the_plain_network(make_cfg, store, tmp_path):
    import shutil
    import time

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler")
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", "debug=quick", "model.hidden_sizes=[8]", "trainer.compile=true")
    began = time.perf_counter()
    result = run(cfg, ["trainer.compile=true"], tmp_path / "out")
    print(f"compiled run: {time.perf_counter() - began:.1f} s")
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"
    assert "test_rmse" in result.metrics
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "model")))
    (weights,) = local.rglob("model.safetensors")
    from safetensors.torch import load_file

    assert not [k for k in load_file(weights) if "_orig_mod" in k]
    from sklearn.datasets import load_diabetes

    predicted = mlflow.pyfunc.load_model(result.model_uri).predict(load_diabetes(as_frame=True).data.head(5))
    assert len(predicted) == 5


def test_last_checkpoint_every_epoch_and_best_only_when_it_improves(tmp_path):
    """lr=0: val_loss never improves after the first epoch, so best.ckpt stays at epoch 0 while last.ckpt (what
    resume=auto continues from) follows every epoch (Lightning's save_last=True left it at epoch 0 too)."""
    _, trainer = _fit(tmp_path, optimizer=partial(torch.optim.SGD, lr=0.0), epochs=3)
    folder = tmp_path / "ckpt"
    last = torch.load(folder / "last.ckpt", weights_only=False)
    best = torch.load(folder / "best.ckpt", weights_only=False)
    assert (last["epoch"], best["epoch"]) == (2, 0)
    assert not (folder / "last.ckpt").is_symlink()
    assert Path(trainer.checkpoint_callback.best_model_path).name == "best.ckpt"


def test_last_checkpoint_links_to_a_best_checkpoint_written_at_the_same_epoch(tmp_path):
    """A model that keeps improving: one write per epoch, last.ckpt a link to best.ckpt (never written through)."""
    _fit(tmp_path, epochs=3)
    folder = tmp_path / "ckpt"
    assert (folder / "last.ckpt").is_symlink() and (folder / "last.ckpt").resolve() == (folder / "best.ckpt")
    assert torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 2


def test_a_checkpoint_read_waits_for_the_background_writes(tmp_path):
    """Checkpoints are written in a background thread; a load (the tuner restores what it has just saved) sees
    the file complete."""
    from lightning_fabric.plugins import TorchCheckpointIO

    from mlproj.training.checkpoints import BackgroundCheckpointIO

    io = BackgroundCheckpointIO(TorchCheckpointIO())
    state = {"w": torch.randn(2000, 500)}
    for i in range(3):  # queued writes, the last one of the file read below
        io.save_checkpoint({**state, "i": i}, tmp_path / "a.ckpt")
    loaded = io.load_checkpoint(tmp_path / "a.ckpt")
    assert loaded["i"] == 2 and torch.equal(loaded["w"], state["w"])
    io.remove_checkpoint(tmp_path / "a.ckpt")
    io.teardown()
    assert not (tmp_path / "a.ckpt").exists()


def test_cuda_graphs_compile_the_step_in_reduce_overhead_mode_and_train_as_eager(tmp_path, monkeypatch):
    """trainer.cuda_graphs: the network's forward compiled with mode="reduce-overhead" and static shapes (the
    real capture needs a GPU: tests/test_gpu.py). Here torch.compile hands the function back, so the graphs'
    step (a new iteration marked per minibatch, outputs copied for the metrics) runs eagerly on the CPU and
    must train exactly as the plain step does."""
    plain, _ = _fit(tmp_path / "plain", epochs=2)
    calls: list[dict] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **options: calls.append(options) or fn)
    graphs, _ = _fit(tmp_path / "graphs", epochs=2, cuda_graphs=True)
    assert calls == [{"mode": "reduce-overhead", "dynamic": False}] and graphs._graphs
    for a, b in zip(plain.model.parameters(), graphs.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_direct_optimizer_steps_train_as_lightnings_and_give_way_to_a_per_step_hook(tmp_path):
    """On one device in 32-bit, the task steps the optimizer itself (mlproj.tasks.steps): the same weights and
    global_step as through Lightning's manual_backward / LightningOptimizer.step, which a callback with a
    per-step hook (here on_after_backward, which must be called) still gets."""
    import pytorch_lightning as pl

    class Counting(pl.Callback):
        calls = 0

        def on_after_backward(self, trainer, module):
            Counting.calls += 1

    lean, t_lean = _fit(tmp_path / "lean", epochs=2, steps_per_chunk=4)
    hooked, t_hooked = _fit(tmp_path / "hooked", epochs=2, steps_per_chunk=4, callbacks=[Counting()])
    assert lean._lean and not hooked._lean
    assert Counting.calls == t_hooked.global_step == t_lean.global_step == 2 * 13  # 200 rows / 16: 13 minibatches
    for a, b in zip(lean.model.parameters(), hooked.model.parameters(), strict=True):
        assert torch.equal(a, b)
    clipped, _ = _fit(tmp_path / "clipped", epochs=1, gradient_clip_val=0.5)
    assert not clipped._lean  # clipping is Lightning's (after AMP unscaling)
