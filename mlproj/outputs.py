"""A run's own output folder, even for commands started in the same second from one folder.

Hydra names the folder by the time (`outputs/<date>/<H-M-S>`), so two commands started in the same second
shared it: one overwrote the other's checkpoints and `mlflow_run.json`. conf/config.yaml's `hydra.run.dir`
goes through `${mlproj.unique:...}`, which claims the folder with an atomic `os.mkdir` and takes the next
free suffix (`-1`, `-2`, ...) when another process holds it. Light to import: the entry point registers it.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from omegaconf import OmegaConf

RESOLVER = "mlproj.unique"
# Hydra reads hydra.run.dir more than once per command: each read must name the folder claimed first.
_claimed: dict[str, str] = {}


def unique_dir(base: str) -> str:
    """`base` if no other process holds it, else `base-1`, `base-2`, ...: the first one this call created."""
    if base in _claimed:
        return _claimed[base]
    path = Path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
        try:
            os.mkdir(candidate)  # atomic: of several processes, exactly one creates it
        except FileExistsError:
            continue
        _claimed[base] = str(candidate)
        return str(candidate)
    raise AssertionError("unreachable")


def new_command() -> None:
    """A new command in this process (the tests run several): it claims a folder of its own."""
    _claimed.clear()


def register() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, unique_dir)
