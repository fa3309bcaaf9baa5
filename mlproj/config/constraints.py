"""Ranges of the arguments of `_target_` nodes (model, optimizer, scheduler, loss) that no type hint says.

torch's optimizers and schedulers check their arguments only when built, and mlproj's networks when the run
already exists (a FAILED run, a 50-line traceback). Constraints come from the parameter's name, which means the
same thing across torch's classes and mlproj's networks (`lr`, `momentum`, `betas`, `dropout`, sizes); any
float must be finite. Checked at startup with the rest of the node (families.check_targets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mlproj.errors import ConfigError

Rule = tuple[Callable[[float], bool], str]

POSITIVE: Rule = (lambda v: v > 0, "must be > 0")
NON_NEGATIVE: Rule = (lambda v: v >= 0, "must be >= 0")
AT_LEAST_ONE: Rule = (lambda v: v >= 1, "must be >= 1")
FRACTION: Rule = (lambda v: 0 <= v < 1, "must be in [0, 1)")
UNIT: Rule = (lambda v: 0 <= v <= 1, "must be in [0, 1]")

# family -> parameter name -> its rule, for a number and for each item of a list of numbers (betas, sizes)
OPTIMIZER: dict[str, Rule] = {  # torch.optim
    "lr": POSITIVE,
    "momentum": NON_NEGATIVE,
    "dampening": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE,
    "eps": NON_NEGATIVE,
    "betas": FRACTION,
    "alpha": NON_NEGATIVE,
    "lr_decay": NON_NEGATIVE,
    "initial_accumulator_value": NON_NEGATIVE,
    "rho": UNIT,
}
SCHEDULER: dict[str, Rule] = {  # torch.optim.lr_scheduler
    "gamma": POSITIVE,
    "step_size": AT_LEAST_ONE,
    "T_max": AT_LEAST_ONE,
    "T_0": AT_LEAST_ONE,
    "T_mult": AT_LEAST_ONE,
    "eta_min": NON_NEGATIVE,
    "factor": FRACTION,
    "patience": NON_NEGATIVE,
    "cooldown": NON_NEGATIVE,
    "min_lr": NON_NEGATIVE,
    "threshold": NON_NEGATIVE,
    "max_lr": POSITIVE,
    "total_steps": AT_LEAST_ONE,
    "epochs": AT_LEAST_ONE,
    "steps_per_epoch": AT_LEAST_ONE,
    "pct_start": UNIT,
    "total_iters": NON_NEGATIVE,
    "milestones": NON_NEGATIVE,
}
NETWORK: dict[str, Rule] = {  # mlproj.models and torch.nn layers
    "dropout": FRACTION,
    "hidden_sizes": AT_LEAST_ONE,
    "hidden_size": AT_LEAST_ONE,
    "channels": AT_LEAST_ONE,
    "width": AT_LEAST_ONE,
    "layers": AT_LEAST_ONE,
    "num_layers": AT_LEAST_ONE,
    "kernel_size": AT_LEAST_ONE,
    "levels": AT_LEAST_ONE,
    "embed_dim": AT_LEAST_ONE,
    "d_model": AT_LEAST_ONE,
    "heads": AT_LEAST_ONE,
    "ff_dim": AT_LEAST_ONE,
    "ngrams": AT_LEAST_ONE,
    "buckets": AT_LEAST_ONE,
}
LOSS: dict[str, Rule] = {"label_smoothing": UNIT, "delta": POSITIVE, "beta": NON_NEGATIVE}  # torch.nn losses
KNOWN = {"model": NETWORK, "optimizer": OPTIMIZER, "scheduler": SCHEDULER, "loss": LOSS}


def check_node(key: str, family: str, values: dict[str, Any]) -> None:
    """Every argument of a `_target_` node of `family` (plain Python, specials included): finite numbers, and
    the family's rule for its name. Raises ConfigError naming the key."""
    rules = KNOWN.get(family, {})
    for name, value in values.items():
        if not str(name).startswith("_"):
            check_value(f"{key}.{name}", value, rules.get(str(name)))


def check_value(key: str, value: Any, rule: Rule | None) -> None:
    items = list(value) if isinstance(value, list | tuple) else [value]
    numbers = [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
    if any(not math.isfinite(v) for v in numbers):
        raise ConfigError(f"{key}={_shown(value)} must be a finite number")
    if rule is None or not numbers:
        return
    ok, says = rule
    if not all(ok(v) for v in numbers):
        each = "each value " if isinstance(value, list | tuple) else ""
        raise ConfigError(f"{key}={_shown(value)}: {each}{says}" if each else f"{key}={_shown(value)} {says}")


def _shown(value: Any) -> str:
    return str(list(value)) if isinstance(value, list | tuple) else str(value)
