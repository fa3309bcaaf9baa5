"""A command's start-up without CPython's cyclic garbage collector walking the imports, and its exit likewise.

Importing torch, Lightning (which imports torch._dynamo, sympy, torchmetrics, scipy, matplotlib) and MLflow
creates ~900,000 long-lived objects. The generational collector is triggered every 700 allocations and rescans
the ever-growing older generations on the way, then walks them all again while the interpreter exits: about
3-4 s of a 13 s default run on this project's 2-core machine (benchmarks/2026-11-30-startup-gc.md). So a
command pauses collection while it starts, freezes what the imports left once they are done (`gc.freeze`: moved
out of the collector's sight; they live as long as the modules holding them) and collects as usual from there
on, through training; at exit the survivors are frozen again so that the final collections have nothing to walk.
What is skipped is only cyclic garbage made during start-up (a few thousand objects, measured), kept for the
process's life, and finalizers of objects still alive at exit, which Python never promises to run.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
from collections.abc import Iterator

_paused = False


@contextlib.contextmanager
def quick_start() -> Iterator[None]:
    """Around a whole process's command (`python -m mlproj`, the `mlproj` script; not a command called inside
    another program, such as a test, whose garbage this would keep): collection paused until `started()`."""
    global _paused
    if not gc.isenabled():  # the caller manages the collector
        yield
        return
    gc.disable()
    _paused = True
    atexit.register(gc.freeze)  # the atexit handlers run before the interpreter's final collections
    try:
        yield
    finally:
        if _paused:  # the command ended before training (an error, --help): nothing to freeze
            _paused = False
            gc.enable()


def started() -> None:
    """The heavy imports are done (torch, Lightning, MLflow and its store): freeze what they left and turn
    collection back on, for training and everything after it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
