"""A command's start-up without CPython's cyclic garbage collector walking the imports, and its exit likewise.

Importing torch, Lightning (which imports torch._dynamo, sympy, torchmetrics, scipy, matplotlib) and MLflow
creates ~900,000 long-lived objects. The generational collector is triggered every 700 allocations and rescans
the ever-growing older generations on the way, then walks them all again while the interpreter exits: about
3-4 s of a 13 s default run on this project's 2-core machine (benchmarks/2026-11-30-startup-gc.md). So a
command pauses collection while torch and Lightning load; `started()` then freezes what they left (`gc.freeze`:
moved out of the collector's sight; they live as long as the modules holding them) and collects as usual, so the
data is prepared and the model trained with a working collector; at exit the survivors are frozen too, so that
the interpreter's final collections have nothing to walk. Freezing happens once: a frozen object that later
becomes cyclic garbage is never freed, so nothing made after torch and Lightning loaded (the data, a sweep's
trials) is frozen while the process works. What is given up: the cyclic garbage made until then (~52,000
objects on the default run, measured) is kept for the process's life, since one full collection to free it
costs ~0.4 s; and finalizers of objects still alive at exit are not run, which Python never promises anyway.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
from collections.abc import Iterator

_active = False  # a quick start began in this process: its exit freeze is registered, a nested one does nothing
_paused = False  # the collector is off, waiting for started()


@contextlib.contextmanager
def quick_start() -> Iterator[None]:
    """Around a whole process's command (`python -m mlproj`, the `mlproj` script; not a command called inside
    another program, such as a test, whose garbage this would keep): collection paused until `started()`."""
    global _active, _paused
    if not gc.isenabled() or _active:  # the caller manages the collector
        yield
        return
    gc.disable()
    _active = _paused = True
    atexit.register(gc.freeze)  # the atexit handlers run before the interpreter's final collections
    try:
        yield
    finally:
        if _paused:  # the command ended before its data and training (an error, --help, --cfg)
            _paused = False
            gc.enable()


def started() -> None:
    """torch and Lightning are loaded: freeze what they left and collect as usual from here on (the data's
    preparation, training, and a sweep launcher's waiting included)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
