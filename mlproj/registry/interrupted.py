"""SIGTERM or Ctrl-C during the registry gate: the run is already FINISHED, so the gate says what it left.

Registration takes seconds (a version, then the aliases) after the run has ended; a signal there used to end
the command with no word, nothing registered and no decision on the run. Here the run gets the decision tag
`interrupted`, and one line says what the registry holds of it and the command that finishes the job
(`mlproj.register` settles the aliases of a version the gate had already created).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlproj import tags
from mlproj.errors import Interrupted


def after_run(client: Any, cfg: Any, result: Any, data_name: str, target: str, in_sweep: bool = False) -> Any:
    """`registry.gate.after_run`, with a signal during it reported and tagged instead of a silent exit."""
    from mlproj.registry import gate

    name = cfg.registry.model_name or gate.default_model_name(result.experiment, data_name, target)
    try:
        with _sigterm_raises():
            return gate.after_run(client, cfg, result, data_name, target, in_sweep=in_sweep)
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal does not cut the report
        try:
            line = what_was_left(client, result.run_id, name, cfg, signum)
        finally:
            signal.signal(signal.SIGTERM, previous)
        raise Interrupted(signum, line) from exc


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM's default action ends the process at once; here it raises, as Ctrl-C does."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def what_was_left(client: Any, run_id: str, name: str, cfg: Any, signum: int) -> str:
    """The decision tag on the run, and the one line: what was registered, what was not, how to finish."""
    from mlproj.tracking.masking import redact
    from mlproj.tracking.runs import tracking_uri

    try:
        client.set_tag(run_id, tags.DECISION, tags.DECISION_INTERRUPTED)
        mine = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
        if mine:
            held = f"version {mine[0].version} of {name!r} was created but its aliases may not be set"
        else:
            held = f"nothing was registered as {name!r}"
    except Exception:  # the registry did not answer: say so, the command below still finishes the job
        held = f"whether a version of {name!r} was created is unknown (the registry did not answer)"
    command = f"python -m mlproj.register --run-id {run_id} --model-name {name}"
    command += f" --tracking-uri {redact(tracking_uri(cfg.tracking))}"
    if cfg.tracking.registry_uri:
        command += f" --registry-uri {redact(cfg.tracking.registry_uri)}"
    where = signal.Signals(signum).name
    return f"mlproj: interrupted ({where}) during the registry gate: run {run_id} is FINISHED; {held}; finish with: {command}"
