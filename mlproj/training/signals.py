"""Ctrl-C and SIGTERM during training: turned into `Interrupted`, so the run ends KILLED with its checkpoints."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def interrupts(trainer: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM inside Lightning, turned into `Interrupted` with the signal that came, so the run
    ends KILLED and the command exits 128 + the signal (130, 143).

    Lightning turns Ctrl-C into SystemExit(1). A SIGTERM it only notes, and stops every rank together at the
    next batch (SIGTERMException), so here a SIGTERM is only noted too: raising at once would leave rank 0
    mid-step while the other ranks wait in a collective. One that came while Lightning was not listening
    (set-up, teardown) is raised when the call returns."""
    import threading

    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from mlproj.errors import Interrupted
    from mlproj.tracking import runs as tracking

    came: list[int] = []
    sigint = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: came.append(signum)) if main else None
    try:
        yield
    except SystemExit as exc:
        if isinstance(exc, SIGTERMException) or came:
            raise Interrupted(signal.SIGTERM) from exc
        if not trainer.interrupted:
            raise
        raise Interrupted(tracking.interrupt_signal(exc.__context__)) from exc
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after an interrupt
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    if came:
        raise Interrupted(signal.SIGTERM)
