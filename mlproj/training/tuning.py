"""Lightning's Tuner before training: a learning-rate finder and a batch-size finder (`tuner.*`).

`tune` runs them on the run's own trainer (Lightning swaps its callbacks and logger out while tuning and
restores the weights afterwards) and returns what to log on the run. The batch size lives on the datamodule
(`datamodule.batch_size`, read by its train_dataloader()); the learning rate goes to mlproj's task through its
optimizer factory, or to a user's module through its `lr` / `learning_rate` attribute.

The finders count Lightning training steps as optimizer steps, so a datamodule whose train_dataloader() yields
chunks of minibatches (mlproj's `TensorBatches(chunk=K)`) must expose that as a `chunk` attribute, which is
1 while tuning; mlproj's task refuses a chunk under the learning-rate finder.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from mlproj.config.schema import plain
from mlproj.errors import ConfigError

LR_ATTRIBUTES = ("lr", "learning_rate")
_TEMP_CHECKPOINTS = (".lr_find_*.ckpt", ".scale_batch_size_*.ckpt")


def tune(cfg_tuner: Any, trainer: Any, module: Any, datamodule: Any) -> dict[str, float]:
    """Run the finders `cfg_tuner` asks for, apply their results; returns {"tuned_batch_size", "tuned_lr"}
    (those that ran) to log on the run. Batch size first, so the learning rate is found at that size."""
    if not (cfg_tuner.lr_find or cfg_tuner.scale_batch_size):
        return {}
    from pytorch_lightning.tuner import Tuner

    tuner, found = Tuner(trainer), {}
    owns_lr = _optimizer_factory(module) is not None  # mlproj's task: the lr goes to its optimizer factory
    if cfg_tuner.lr_find and not owns_lr and not _lr_attribute(module):
        raise ConfigError(
            f"tuner.lr_find=true needs the module ({type(module).__name__}) to have an `lr` or `learning_rate` "
            "attribute that its configure_optimizers reads"
        )
    chunk = getattr(datamodule, "chunk", None)
    if chunk is not None:
        datamodule.chunk = 1
    try:
        if cfg_tuner.scale_batch_size:
            _tuning(module, "scale_batch_size")
            size = tuner.scale_batch_size(
                module,
                datamodule=datamodule,
                mode=plain(cfg_tuner.mode),
                max_trials=cfg_tuner.max_trials,
                steps_per_trial=cfg_tuner.steps_per_trial,
                init_val=cfg_tuner.init_val,
            )
            if size is not None:
                found["tuned_batch_size"] = float(size)
        if cfg_tuner.lr_find:
            _tuning(module, "lr_find")
            finder = tuner.lr_find(
                module,
                datamodule=datamodule,
                min_lr=cfg_tuner.min_lr,
                max_lr=cfg_tuner.max_lr,
                num_training=cfg_tuner.num_training,
                update_attr=not owns_lr,
            )
            lr = finder.suggestion() if finder is not None else None  # None: fast_dev_run skips it
            if finder is not None and (lr is None or not math.isfinite(lr)):
                raise ConfigError(
                    "tuner.lr_find found no learning rate (too few points: raise tuner.num_training or "
                    "trainer.max_epochs, or widen tuner.min_lr..tuner.max_lr)"
                )
            if lr is not None:
                if owns_lr:
                    set_lr(module, lr)
                found["tuned_lr"] = float(lr)
    finally:
        _tuning(module, "")
        if chunk is not None:
            datamodule.chunk = chunk
        _remove_temp_checkpoints(Path(trainer.default_root_dir))
    return found


def _tuning(module: Any, finder: str) -> None:
    if hasattr(module, "tuning"):  # mlproj's task: the finder's divergence is no failed run
        module.tuning = finder


def _optimizer_factory(module: Any) -> Any:
    return getattr(module, "optimizer_factory", None)


def _lr_attribute(module: Any) -> str | None:
    hparams = getattr(module, "hparams", {})
    return next((a for a in LR_ATTRIBUTES if hasattr(module, a) or a in hparams), None)


def set_lr(module: Any, lr: float) -> None:
    """mlproj's task builds its optimizer from a factory (a functools.partial): the same one, at `lr`."""
    factory = module.optimizer_factory
    if isinstance(factory, functools.partial):
        module.optimizer_factory = functools.partial(factory.func, *factory.args, **{**factory.keywords, "lr": lr})
    else:
        module.optimizer_factory = functools.partial(factory, lr=lr)


def _remove_temp_checkpoints(folder: Path) -> None:
    """Lightning deletes its temporary checkpoints, except when a trial fails: none stays in the run's folder."""
    for pattern in _TEMP_CHECKPOINTS:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
