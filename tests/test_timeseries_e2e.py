"""Time series through everything else, unchanged, as a user runs it (subprocesses, so all slow): a grid and an
Optuna sweep on the family's metric, a run preempted and resumed, DDP over 2 CPU processes, and the forecaster
served over HTTP with dates as JSON strings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port, run_cli, wait_until_serving
from tests.reliability import faults
from tests.test_ecosystem import BIN, post
from tests.test_timeseries import monthly

pytestmark = pytest.mark.slow


def write(tmp_path: Path, n: int = 96) -> Path:
    path = tmp_path / "sales.csv"
    monthly(n).to_csv(path, index=False)
    return path


def args(path: Path, *extra: str, epochs: int = 2) -> list[str]:
    found = ["data=timeseries", f"data.path={path}", "data.time=month", "data.target=sales", "data.horizon=3"]
    found += ["data.window=12", "data.season=12", "data.batch_size=16", f"trainer.max_epochs={epochs}"]
    found += ["trainer.progress_bar=none", "tracking.log_plots=false", "quiet=true"]
    return [*found, *extra]


def cpu(*extra: str) -> list[str]:
    return ["trainer.accelerator=cpu", "trainer.devices=1", *extra]


def runs(tmp_path: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("mlproj-sales").experiment_id])


def test_grid_sweep_over_models_ranks_trials_by_val_mase(tmp_path):
    path = write(tmp_path)
    extra = cpu("sweep.objective=val_mase", "++registry.thresholds.val_mase=100", "registry.when=best")
    out = run_cli("-m", *args(path, "model=mlp,tcn", *extra), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client, found = runs(tmp_path)
    (parent,) = [r for r in found if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in found if r.data.tags.get("mlproj.sweep.role") == "trial"]
    assert sorted(t.data.params["model._target_"] for t in trials) == ["mlproj.models.MLP", "mlproj.models.TCN"]
    assert all("test_mase" in t.data.metrics and "test_smape" in t.data.metrics for t in trials)
    best = min(trials, key=lambda t: t.data.metrics["sweep_objective"])
    assert parent.data.tags["mlproj.sweep.best_run_id"] == best.info.run_id
    assert best.data.metrics["sweep_objective"] == pytest.approx(best.data.metrics["val_mase"])
    (version,) = client.search_model_versions("name='mlproj-sales-sales'")  # the best trial, through the gate
    assert version.run_id == best.info.run_id


def test_optuna_search_minimises_val_mase(tmp_path):
    path = write(tmp_path)  # the preset's search space (the MLP's knobs, the batch size) fits a forecaster too
    search = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "sweep.objective=val_mase"]
    out = run_cli(*search, "sweep.storage=sqlite:///optuna.db", *args(path, *cpu()), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    study = optuna.load_study(study_name="mlproj-sales", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and len(study.trials) == 2
    _, found = runs(tmp_path)
    trials = [r for r in found if r.data.tags.get("mlproj.sweep.role") == "trial"]
    assert sorted(t.data.metrics["sweep_objective"] for t in trials) == pytest.approx(
        sorted(t.data.metrics["val_mase"] for t in trials)
    )


def test_preempted_then_resumed_into_the_same_run(tmp_path):
    path = write(tmp_path, n=400)
    epochs = 12  # a linear forecaster over the lags, paced by a sleep per batch: time to interrupt it
    paced = ["model=linear", "model._target_=tests.models.Slow", "+model.delay=0.01", "data.batch_size=8"]
    command = args(
        path, *cpu(*paced), "trainer.early_stopping=false", "tracking.uri=sqlite:///mlflow.db", epochs=epochs
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    code, output = faults.interrupted(command, tmp_path, client, 1, signal.SIGTERM)
    assert code == 143, output[-3000:]
    killed = faults.only_run(client)
    assert killed.info.status == "KILLED" and len(faults.val_steps(client, killed.info.run_id)) < epochs
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    again = run_cli(*command, "resume=auto", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = faults.only_run(client)
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "val_mase")] == list(range(epochs))
    assert "test_mase" in resumed.data.metrics


def test_ddp_on_two_cpu_processes_is_one_run(tmp_path):
    path = write(tmp_path)
    out = run_cli(*args(path, "trainer=ddp_cpu", "model=gru", "quiet=false"), cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Starting with 2 processes" in out.stdout + out.stderr
    client, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["trainer.devices"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mase")] == [0, 1]
    assert {"test_mase", "test_mape", "test_smape", "test_mae", "test_rmse"} <= set(run.data.metrics)


def test_forecaster_served_over_http_takes_dates_as_strings(tmp_path):
    path = write(tmp_path)
    out = run_cli(*args(path, *cpu()), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    _, (run,) = runs(tmp_path)
    port, log_path = free_port(), tmp_path / "serve.log"
    command = [str(BIN / "mlflow"), "models", "serve", "-m", run.data.tags["mlproj.model_uri"]]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_serving(port, proc, log_path)
        history = pd.read_csv(path).tail(12)  # the dates as the file has them: strings
        split = json.loads(history.to_json(orient="split", index=False))
        answer = post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": split})["predictions"]
        assert [p["step"] for p in answer] == [1, 2, 3]
        assert [p["month"][:10] for p in answer] == ["2023-01-01", "2023-02-01", "2023-03-01"]
        assert all(isinstance(p["prediction"], float) for p in answer)
    finally:
        from contextlib import suppress

        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
