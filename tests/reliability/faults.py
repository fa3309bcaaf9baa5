"""Fault injection for the reliability tests: a training command started in the background, paced by a
slow model, and waits on what it has logged so far."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

# About 0.5 s per epoch on 2 cores (54 batches of a model sleeping 10 ms): long enough to act mid-run.
PACED = [
    "data=synthetic",
    "data.rows=4000",
    "model=linear",
    "model._target_=tests.models.Slow",
    "+model.delay=0.01",
    "trainer.max_epochs=10",
    "trainer.early_stopping=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.progress_bar=plain",
    "tracking.log_plots=false",
]


def importable() -> dict[str, str]:
    """PYTHONPATH with the repository first: tests.models importable, as a user's own code must be."""
    return {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m mlproj ARGS` in the background, with the repository importable (for tests.models)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(importable())
    return subprocess.Popen(
        [sys.executable, "-m", "mlproj", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: `stop` ends the DDP ranks it launched too
    )


def stop(proc: subprocess.Popen) -> None:
    """Kill what is left of a started command, launched ranks included (a no-op once it has ended)."""
    import signal
    from contextlib import suppress

    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(30)


def wait_until(check: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the store or the run may not exist yet
            pass
        if proc.poll() is not None:
            raise AssertionError(f"the command ended early ({proc.returncode}):\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("timed out waiting on the run")


def interrupted(
    args: list[str], cwd: Path, client: MlflowClient, epochs: int, signum: int, timeout: float = 120
) -> tuple[int, str]:
    """Start a paced run, send it `signum` once it has logged `epochs` epochs; (exit code, output)."""
    proc = start(args, cwd)
    try:
        wait_until(lambda: epochs_logged(client) >= epochs, proc, timeout=timeout)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=180)
    finally:
        stop(proc)
    return proc.returncode, output


def the_experiment(client: MlflowClient, experiment: str | None = None):
    """The named experiment, or the store's one mlproj experiment (by default `mlproj-<data name>`)."""
    if experiment is not None:
        return client.get_experiment_by_name(experiment)
    (exp,) = [e for e in client.search_experiments() if e.name == "mlproj" or e.name.startswith("mlproj-")]
    return exp


def epochs_logged(client: MlflowClient, experiment: str | None = None) -> int:
    (run,) = client.search_runs([the_experiment(client, experiment).experiment_id])
    return len(client.get_metric_history(run.info.run_id, "val_loss"))


def only_run(client: MlflowClient, experiment: str | None = None):
    (run,) = client.search_runs([the_experiment(client, experiment).experiment_id])
    return run


def val_steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted({m.step for m in client.get_metric_history(run_id, "val_loss")})
