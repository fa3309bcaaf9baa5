"""A signal during the registry gate: the run stays FINISHED, the decision says `interrupted`, one line says
what was registered and the command that finishes the job; that command then does."""

from __future__ import annotations

import os
import shlex
import signal

import pytest
from mlflow.tracking import MlflowClient

from mlproj import register, tags
from tests.conftest import QUICK, run_main


class Unhandled(Exception):
    """What a SIGTERM during the gate raises if mlproj leaves the signal to its default (ending the process)."""


def _sigterm(*_: object) -> None:
    raise Unhandled("SIGTERM reached the test's own handler: the gate did not handle it")


@pytest.mark.parametrize(
    "where,signum,held",
    [
        ("set_registered_model_alias", signal.SIGTERM, "version 1 of 'mlproj-diabetes' was created"),
        ("create_model_version", signal.SIGINT, "nothing was registered as 'mlproj-diabetes'"),
    ],
)
def test_a_signal_during_the_gate_says_how_to_finish(store, capsys, monkeypatch, where, signum, held):
    real = getattr(MlflowClient, where)

    def signalled(self, *args, **kwargs):  # the signal comes while MLflow (real) is mid-registration
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)
        os.kill(os.getpid(), signum)

    monkeypatch.setattr(MlflowClient, where, signalled)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        code = run_main(*QUICK, "model=linear", f"tracking.uri={store}", "++registry.thresholds.test_r2=-100")
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 128 + signum, err[-2000:]
    (line,) = [x for x in err.splitlines() if "during the registry gate" in x]
    assert held in line, line
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags[tags.DECISION] == "interrupted"
    command = shlex.split(line.split("finish with: ", 1)[1])
    assert command[:3] == ["python", "-m", "mlproj.register"] and f"--run-id={run.info.run_id}" in "=".join(command)
    assert register.main(command[3:]) == 0  # the printed command finishes the job
    champion = client.get_model_version_by_alias("mlproj-diabetes", "champion")
    assert champion.run_id == run.info.run_id and str(champion.version) == "1"
    assert str(client.get_model_version_by_alias("mlproj-diabetes", "challenger").version) == "1"
