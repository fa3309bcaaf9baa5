"""Models a user could bring through `_target_`, plus two that fail on purpose (for status tests)."""

from __future__ import annotations

import torch
from torch import nn


class NeedsWidth(nn.Module):
    def __init__(self, in_features: int, out_features: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FailsAtStep(nn.Linear):
    """Raises after `after` forward calls: an exception, or a Ctrl-C."""

    def __init__(self, in_features: int, out_features: int, after: int = 2, interrupt: bool = False) -> None:
        super().__init__(in_features, out_features)
        self.after, self.interrupt, self.calls = after, interrupt, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            if self.interrupt:
                raise KeyboardInterrupt
            raise RuntimeError("boom: a bug in the user's model")
        return super().forward(x)


class Slow(nn.Linear):
    """A linear model that sleeps `delay` seconds per batch: paces training so a test can act mid-run."""

    def __init__(self, in_features: int, out_features: int, delay: float = 0.01) -> None:
        super().__init__(in_features, out_features)
        self.delay = delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(self.delay)
        return super().forward(x)
