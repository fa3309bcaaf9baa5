"""The built-in task's optimizer steps without Lightning's per-minibatch machinery, where nothing uses it.

`manual_backward` and `LightningOptimizer.step` call the callbacks' and the module's per-step hooks
(on_before_backward, on_after_backward, on_before_optimizer_step) and the precision plugin around a plain
`loss.backward()` / `optimizer.step()`: tens of microseconds per minibatch, several percent of a small MLP's
CPU step. On one device, in plain 32-bit precision, without clipping or the tuner, and when no callback or
subclass implements those hooks, the task calls `backward()` and the optimizer directly, with Lightning's
step accounting kept (`trainer.global_step` counts these steps; LightningOptimizer's before/after-step hooks
are the manual-optimization loop's counters). Anything else goes through Lightning as before.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden

HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def lean_steps(module: pl.LightningModule, base: type, clipping: bool) -> bool:
    """Whether the direct path gives what Lightning's would: `base` is the task class whose own
    on_before_optimizer_step only clips (`clipping`: whether it will)."""
    trainer = module.trainer
    if type(trainer.strategy) is not SingleDeviceStrategy or type(trainer.precision_plugin) is not Precision:
        return False
    if clipping or any(is_overridden(h, module, base) for h in HOOKS):
        return False
    if any(is_overridden(h, module, pl.LightningModule) for h in HOOKS[:2]):
        return False
    return not any(is_overridden(h, cb, pl.Callback) for cb in trainer.callbacks for h in HOOKS)


def backward(loss: torch.Tensor) -> None:
    loss.backward()


def step(optimizer: Any) -> None:
    """LightningOptimizer's step (its step counters around it), without the strategy and precision layers."""
    optimizer._on_before_step()
    optimizer.optimizer.step()
    optimizer._on_after_step()
