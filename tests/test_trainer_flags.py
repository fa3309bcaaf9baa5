"""Any Trainer flag (`+trainer.X`), any callback (`callbacks.<name>._target_`) and Lightning's Tuner.

In-process and small: a few hundred rows, one or two epochs, on CPU, through mlproj.training.trainer as
mlproj.train builds the task and the trainer.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.loggers.logger import DummyLogger

from mlproj.config.checks import check_config
from mlproj.config.flags import build_callbacks, check_trainer_flags
from mlproj.config.schema import TrainerConfig, TunerConfig
from mlproj.data.batches import TensorBatches
from mlproj.errors import ConfigError
from mlproj.training.trainer import RunLogger, build_batches, build_task, build_trainer, steps_per_chunk
from mlproj.training.tuning import tune

ROWS, BATCH = 200, 16  # 13 minibatches per epoch, the last one short


def _data(rows: int = ROWS, features: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    return x, x @ torch.randn(features, generator=gen) + 0.1 * torch.randn(rows, generator=gen)


def _trainer_cfg(epochs: int = 1, **keys):
    cfg = OmegaConf.structured(TrainerConfig)
    cfg.accelerator, cfg.devices, cfg.max_epochs, cfg.progress_bar = "cpu", 1, epochs, "none"
    cfg.early_stopping = False
    OmegaConf.set_struct(cfg, False)  # what `+trainer.X=...` does to the composed node
    for key, value in keys.items():
        cfg[key] = value
    OmegaConf.set_struct(cfg, True)
    return cfg


def _task(cfg, features: int = 6, lr: float = 0.05, optimizer=None):
    from mlproj.models import MLP

    torch.manual_seed(0)
    network = MLP(features, 1, hidden_sizes=[16], dropout=0.0)
    return build_task(cfg, network, "regression", 0, optimizer=optimizer or partial(torch.optim.SGD, lr=lr))


def _fit(tmp_path: Path, epochs: int = 1, logger=None, callbacks=None, **keys):
    cfg = _trainer_cfg(epochs, **keys)
    x, y = _data()
    module = _task(cfg)
    loaders = build_batches(cfg, {"train": (x, y), "val": (x[:50], y[:50])}, batch_size=BATCH, seed=0)
    trainer = build_trainer(cfg, "regression", logger or DummyLogger(), tmp_path / "ckpt", True, callbacks=callbacks)
    trainer.fit(module, loaders["train"], loaders["val"])
    return module, trainer


# --- Trainer flags -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 5])
def test_accumulate_grad_batches_halves_the_optimizer_steps(tmp_path, chunk):
    """k=2 on the built-in (manual-optimization) task: ceil(13/2)=7 steps per epoch, across chunk boundaries
    (chunks of 5 minibatches: an accumulation spans two chunks), and another weight trajectory."""
    batches = math.ceil(ROWS / BATCH)
    one, t1 = _fit(tmp_path / "one", epochs=2, steps_per_chunk=chunk)
    two, t2 = _fit(tmp_path / "two", epochs=2, steps_per_chunk=chunk, accumulate_grad_batches=2)
    assert t1.global_step == 2 * batches
    assert t2.global_step == 2 * math.ceil(batches / 2)
    assert not torch.allclose(one.model[0].weight, two.model[0].weight)
    # The same weights whatever the chunking: accumulation counts minibatches, not training steps.
    other, _ = _fit(tmp_path / "other", epochs=2, steps_per_chunk=3, accumulate_grad_batches=2)
    for a, b in zip(two.model.parameters(), other.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_accumulation_averages_the_gradients(tmp_path):
    """One step over two minibatches of the whole data equals one step over the whole data (loss / k)."""
    x, y = _data(rows=32)
    whole = _task(_trainer_cfg())
    optimizer = torch.optim.SGD(whole.parameters(), lr=0.05)
    torch.nn.functional.mse_loss(whole(x).squeeze(-1), y).backward()
    optimizer.step()
    cfg = _trainer_cfg(accumulate_grad_batches=2, steps_per_chunk=1, limit_train_batches=2)
    halves = _task(cfg)
    trainer = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "ckpt", True)
    trainer.fit(halves, TensorBatches(x, y, 16), TensorBatches(x, y, 16))
    assert trainer.global_step == 1
    for a, b in zip(whole.parameters(), halves.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


class AutoModule(pl.LightningModule):
    """A user's own module, with automatic optimization."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Linear(6, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def test_automatic_optimization_module_gets_the_flags_from_lightning(tmp_path):
    cfg = _trainer_cfg(monitor="train_loss", accumulate_grad_batches=2, gradient_clip_val=0.5)
    trainer = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "ckpt", True, manual_optimization=False)
    assert trainer.accumulate_grad_batches == 2
    assert trainer.gradient_clip_val == 0.5
    x, y = _data()
    trainer.fit(AutoModule(), TensorBatches(x, y, BATCH))
    assert trainer.global_step == math.ceil(math.ceil(ROWS / BATCH) / 2)
    # The built-in task keeps them to itself: Lightning refuses accumulation for manual optimization.
    manual = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "m", True)
    assert manual.accumulate_grad_batches == 1 and manual.gradient_clip_val is None


def test_other_trainer_flags_reach_lightning(tmp_path):
    cfg = _trainer_cfg(max_steps=5, val_check_interval=4, detect_anomaly=True)
    assert steps_per_chunk(cfg) == 1  # max_steps and an int val_check_interval count minibatches
    _, trainer = _fit(tmp_path, epochs=3, max_steps=5, val_check_interval=4, detect_anomaly=True)
    assert trainer.global_step == 5
    assert trainer.val_check_interval == 4
    assert trainer._detect_anomaly is True  # the flag set above, not only counted by steps_per_chunk
    assert steps_per_chunk(_trainer_cfg(val_check_interval=0.5)) == 32


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.logger=true", "trainer.logger cannot be set: mlproj logs to its own MLflow run"),
        ("+trainer.callbacks=[]", "trainer.callbacks cannot be set: add one with .callbacks.<name>._target_"),
        ("++trainer.default_root_dir=/tmp/x", "trainer.default_root_dir cannot be set"),
        ("+trainer.enable_progress_bar=false", "use trainer.progress_bar"),
        ("+trainer.enable_checkpointing=false", "trainer.enable_checkpointing cannot be set"),
        ("+trainer.max_epoch=3", r"trainer.max_epoch is not a setting of trainer; did you mean max_epochs\?"),
        ("+trainer.zzz=3", "trainer.zzz is not a setting of trainer; keys: accelerator, .*"),
        ("+trainer.accumulate_grad_batches=abc", "trainer.accumulate_grad_batches='abc': Input should be"),
        ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0 must be >= 1"),
        ("+trainer.gradient_clip_algorithm=max", "trainer.gradient_clip_algorithm='max' is not valid"),
        ("+callbacks.x._target_=torch.nn.Linear", "callbacks.x._target_='torch.nn.Linear' is not a pytorch_lightning"),
        ("+callbacks.x._target_=no.such.Thing", "callbacks.x._target_='no.such.Thing' cannot be imported"),
        ("+callbacks=lr_monitor +callbacks.lr_monitor.every=2", "callbacks.lr_monitor.every is not a parameter"),
        ("tuner.min_lr=2 tuner.max_lr=1", "tuner.min_lr=2.0 must be > 0 and below"),
        ("tuner.lr_find=true trainer.devices=2", "tuner.lr_find / tuner.scale_batch_size run on one device"),
    ],
)
def test_bad_flags_are_refused_at_startup_in_one_line(make_cfg, override, message):
    cfg = make_cfg(*override.split())
    with pytest.raises(ConfigError, match=message) as caught:
        check_config(cfg)
    assert "\n" not in str(caught.value)


def test_good_flags_and_callbacks_compose_and_validate(make_cfg):
    cfg = make_cfg(
        "+trainer.accumulate_grad_batches=2",
        "++trainer.val_check_interval=0.5",
        "+trainer.gradient_clip_algorithm=value",
        "+callbacks=lr_monitor",
        "+callbacks.swa._target_=pytorch_lightning.callbacks.StochasticWeightAveraging",
        "+callbacks.swa.swa_lrs=0.01",
        "tuner.lr_find=true",
    )
    check_config(cfg)
    assert cfg.trainer.accumulate_grad_batches == 2
    assert list(cfg.callbacks) == ["lr_monitor", "swa"]
    built = build_callbacks(cfg.callbacks)
    assert [type(c).__name__ for c in built] == ["LearningRateMonitor", "StochasticWeightAveraging"]
    assert check_trainer_flags(make_cfg().trainer) is None  # nothing extra: nothing to check


# --- Callbacks -----------------------------------------------------------------------------------------------


class Recording(RunLogger):
    """mlproj's RunLogger, with no tracking server, remembering what Lightning hands it."""

    def __init__(self) -> None:
        super().__init__(None, "run")
        self.calls: list[tuple[dict[str, float], int | None]] = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))
        super().log_metrics(metrics, step)


def test_lr_monitor_logs_the_learning_rate_into_the_run_logger(tmp_path, make_cfg):
    node = make_cfg("+callbacks=lr_monitor").callbacks
    logger = Recording()
    _fit(tmp_path, epochs=2, logger=logger, callbacks=node)
    lrs = [(m["lr-SGD"], step) for m, step in logger.calls if "lr-SGD" in m]
    assert len(lrs) == 2 and all(v == pytest.approx(0.05) for v, _ in lrs)
    # The epoch-level series still reach the logger, epoch as step.
    assert [e for e, _ in logger.history["train_loss"]] == [0, 1]


class Counting(pl.Callback):
    def __init__(self, start: int = 0) -> None:
        self.epochs = start

    def on_train_epoch_end(self, trainer, module):
        self.epochs += 1


def test_a_users_callback_class_is_built_and_called(tmp_path):
    node = OmegaConf.create({"count": {"_target_": f"{__name__}.Counting", "start": 10}})
    _, trainer = _fit(tmp_path, epochs=2, callbacks=node)
    (counting,) = [c for c in trainer.callbacks if isinstance(c, Counting)]
    assert counting.epochs == 12


def test_a_target_that_is_not_a_callback_is_refused(tmp_path):
    node = OmegaConf.create({"bad": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1}})
    with pytest.raises(ConfigError, match=r"callbacks\.bad\._target_='torch\.nn\.Linear' is not a pytorch_lightning"):
        build_trainer(_trainer_cfg(), "regression", DummyLogger(), tmp_path / "ckpt", True, callbacks=node)


# --- Tuner ---------------------------------------------------------------------------------------------------


class TabularData(pl.LightningDataModule):
    """What mlproj.train hands the tuner: `batch_size` read by train_dataloader()."""

    def __init__(self, batch_size: int = BATCH, chunk: int = 1, rows: int = 512) -> None:
        super().__init__()
        self.batch_size, self.chunk = batch_size, chunk
        self.x, self.y = _data(rows=rows)
        self.sizes: list[int] = []

    def train_dataloader(self):
        self.sizes.append(self.batch_size)
        return TensorBatches(self.x, self.y, self.batch_size, shuffle=True, chunk=self.chunk)

    def val_dataloader(self):
        return TensorBatches(self.x[:64], self.y[:64], 32)


def _tuning(tmp_path: Path, **tuner_keys):
    cfg = _trainer_cfg(epochs=50)
    module = _task(cfg, lr=0.01, optimizer=partial(torch.optim.Adam, lr=0.01, weight_decay=0.0))
    trainer = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "run" / "checkpoints", True)
    tuner_cfg = OmegaConf.structured(TunerConfig)
    for key, value in tuner_keys.items():
        tuner_cfg[key] = value
    return module, trainer, tuner_cfg


@pytest.mark.parametrize("chunk", [1, 4])
def test_lr_find_applies_a_finite_suggestion_to_the_task(tmp_path, chunk):
    module, trainer, tuner_cfg = _tuning(tmp_path, lr_find=True, num_training=60, min_lr=1e-5, max_lr=1.0)
    before = [p.detach().clone() for p in module.parameters()]
    data = TabularData(chunk=chunk)
    found = tune(tuner_cfg, trainer, module, data)
    lr = found["tuned_lr"]
    assert math.isfinite(lr) and 1e-5 < lr < 1.0
    assert module.optimizer_factory.keywords == {"lr": lr, "weight_decay": 0.0}
    assert module.optimizer_factory.func is torch.optim.Adam
    for a, b in zip(before, module.parameters(), strict=True):  # weights restored
        assert torch.equal(a, b)
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    # The same trainer then trains at the found learning rate, its scheduler-free epochs untouched.
    trainer.fit_loop.max_epochs = 1
    trainer.fit(module, datamodule=data)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(lr)


def test_lr_find_sweeps_the_learning_rate_under_manual_optimization(tmp_path):
    """The finder's scheduler is stepped by the task (Lightning never steps it for manual optimization)."""
    from pytorch_lightning.tuner import Tuner

    module, trainer, _ = _tuning(tmp_path)
    module.tuning = "lr_find"
    finder = Tuner(trainer).lr_find(module, datamodule=TabularData(), num_training=30, update_attr=False)
    lrs = finder.results["lr"]
    assert lrs[-1] > 100 * lrs[0]
    with pytest.raises(RuntimeError, match="the learning-rate finder needs one minibatch per training step"):
        Tuner(trainer).lr_find(module, datamodule=TabularData(chunk=2), num_training=30, update_attr=False)
    assert all(math.isfinite(v) for v in finder.results["loss"][:5])


def test_lr_find_on_a_users_module_sets_its_lr(tmp_path):
    cfg = _trainer_cfg(epochs=50, monitor="train_loss")
    trainer = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "ckpt", True, manual_optimization=False)
    module = AutoModule(lr=0.123)
    tuner_cfg = OmegaConf.structured(TunerConfig)
    tuner_cfg.lr_find, tuner_cfg.num_training = True, 40
    found = tune(tuner_cfg, trainer, module, TabularData())
    assert module.lr == found["tuned_lr"] != 0.123


def test_lr_find_without_an_lr_attribute_is_refused(tmp_path):
    class NoLr(AutoModule):
        def __init__(self):
            super().__init__()
            del self.lr

    cfg = _trainer_cfg(monitor="train_loss")
    trainer = build_trainer(cfg, "regression", DummyLogger(), tmp_path / "c", True, manual_optimization=False)
    tuner_cfg = OmegaConf.structured(TunerConfig)
    tuner_cfg.lr_find = True
    with pytest.raises(ConfigError, match="needs the module \\(NoLr\\) to have an `lr` or `learning_rate`"):
        tune(tuner_cfg, trainer, NoLr(), TabularData())


@pytest.mark.parametrize(("mode", "expected"), [("power", 16), ("binsearch", 16)])
def test_scale_batch_size_returns_an_int_and_leaves_no_checkpoint(tmp_path, mode, expected):
    module, trainer, tuner_cfg = _tuning(tmp_path, scale_batch_size=True, max_trials=3, mode=mode, init_val=4)
    data = TabularData(chunk=3)
    found = tune(tuner_cfg, trainer, module, data)
    size = found["tuned_batch_size"]
    assert size == int(size) and data.batch_size == int(size)
    assert 4 <= size <= expected
    assert 8 in data.sizes and data.chunk == 3  # the loader was rebuilt at the tried sizes; the chunk restored
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    assert tune(OmegaConf.structured(TunerConfig), trainer, module, data) == {}  # nothing asked, nothing run
