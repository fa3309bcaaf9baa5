"""The worked example of docs/examples/byo, run as a user runs it: a LightningDataModule and a LightningModule of
the user's own, outside the package, picked with `--config-dir conf experiment=byo_digits` from the example's
folder (a copy in tmp). Trained, swept, gated into the registry, preempted and resumed, trained over 2 CPU
processes; and its model loaded and served from a fresh process that cannot see the example's folder at all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port, run_cli, wait_until_serving
from tests.reliability import faults
from tests.test_ecosystem import BIN, post

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "byo"
MODEL = "byo-digits"
LABELS = list(range(10))
COLUMNS = [f"x{i}" for i in range(64)]  # the 1x8x8 image, flattened: what the packaged model takes


def example(tmp: Path) -> Path:
    """A copy of the example, so nothing is written into the repository; commands run with it as cwd."""
    return Path(shutil.copytree(EXAMPLE, tmp / "byo", ignore=shutil.ignore_patterns("__pycache__")))


def overrides(store: str, *extra: str, epochs: int = 3, one_cpu: bool = True) -> list[str]:
    """The example's own command (`--config-dir conf experiment=byo_digits`), short: a few full epochs."""
    args = ["--config-dir", "conf", "experiment=byo_digits", f"trainer.max_epochs={epochs}"]
    args += ["trainer.progress_bar=none", "trainer.model_summary=false", f"tracking.uri='{store}'"]
    if one_cpu:
        args += ["trainer.accelerator=cpu", "trainer.devices=1"]
    return [*args, *extra]


def runs_of(store: str, experiment: str = "mlproj-DigitsImages") -> list:
    client = MlflowClient(store)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def fresh_env(store: str) -> dict[str, str]:
    """A process that only knows the tracking store: no PYTHONPATH, nothing of the example on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=store, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def digit_rows(n: int):
    """The first `n` of scikit-learn's digits as the model's 64 columns (scaled to [0, 1], as the data module
    does), and their labels."""
    import pandas as pd
    from sklearn.datasets import load_digits

    digits = load_digits()
    return pd.DataFrame(digits.data[:n] / 16.0, columns=COLUMNS), digits.target[:n].tolist()


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The example trained once, with the registry gate on the metric the user's module logs (test_acc, whose
    direction comes from the experiment's metric_directions); then its folder is deleted, so whatever loads
    the model afterwards can only find the user's code inside the model."""
    root = tmp_path_factory.mktemp("trained")
    store = f"sqlite:///{root / 'mlflow.db'}"
    folder = example(root)
    out = run_cli(*overrides(store, "++registry.thresholds.test_acc=0.5", f"registry.model_name={MODEL}"), cwd=folder)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    shutil.rmtree(folder)
    return {"root": root, "store": store, "out": out}


def test_example_trains_logs_its_metrics_and_registers_through_the_gate(registered):
    store = registered["store"]
    (run,) = runs_of(store)
    assert run.info.status == "FINISHED"
    metrics, params = run.data.metrics, run.data.params
    for name in ("train_loss", "val_loss", "val_acc", "test_loss", "test_acc"):
        assert name in metrics, (name, sorted(metrics))
    assert 0.5 < metrics["test_acc"] <= 1.0, metrics
    assert params["task.channels"] == "16" and params["task._target_"] == "digits_cnn.DigitsCNN"
    assert params["data._target_"] == "digits_cnn.DigitsImages"
    unused = sorted(k for k in params if k.startswith(("model.", "optimizer.", "scheduler.")))
    assert unused == [], f"the built-in task's parts, which the user's task does not use, were logged: {unused}"
    assert run.data.tags["mlproj.model_uri"].startswith("models:/")

    client = MlflowClient(store)
    assert run.data.tags["mlproj.registry.decision"] == "registered", run.data.tags.get("mlproj.registry.reason")
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == run.info.run_id
    gate = registered["out"].stdout.split("registry gate", 1)[1]
    (line,) = [line for line in gate.splitlines() if line.split()[:1] == ["test_acc"]]
    assert ">= 0.5" in line and line.split()[-1] == "pass", gate  # acc: max, from the experiment's directions

    # The user's package travelled inside the model (MLflow code_paths), beside mlproj's own code.
    import mlflow

    assert champion.source == run.data.tags["mlproj.model_uri"]  # models:/m-<id>, the run's logged model
    logged = client.get_logged_model(champion.source.removeprefix("models:/"))
    into = str(registered["root"] / "model")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location, dst_path=into))
    assert (local / "code" / "digits_cnn" / "module.py").is_file()
    assert (local / "code" / "digits_cnn" / "data.py").is_file()


LOAD = """
import json, sys
import mlflow, pandas as pd
assert "digits_cnn" not in sys.modules
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_json(sys.stdin, orient="split")
plain = model.predict(rows)
scores = model.predict(rows, params={"probabilities": True})
print(json.dumps({
    "plain": plain.to_dict(orient="list"),
    "scores": scores.to_dict(orient="list"),
    "code": sys.modules["digits_cnn"].__file__,
}))
"""


def test_model_loads_in_a_fresh_process_elsewhere(registered, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rows, labels = digit_rows(40)
    out = subprocess.run(
        [sys.executable, "-c", LOAD, f"models:/{MODEL}@champion"],
        input=rows.to_json(orient="split", index=False),
        cwd=elsewhere,
        env=fresh_env(registered["store"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert "/code/digits_cnn/" in answer["code"]  # imported from the model, the example's folder is gone
    assert list(answer["plain"]) == ["prediction"]
    predicted = answer["plain"]["prediction"]
    assert len(predicted) == 40 and set(predicted) <= set(LABELS)
    assert sum(p == y for p, y in zip(predicted, labels, strict=True)) / 40 > 0.5  # the trained weights
    scores = answer["scores"]
    assert list(scores) == ["prediction", *[f"probability_{k}" for k in LABELS]]
    assert scores["prediction"] == predicted
    for i in range(40):
        assert sum(scores[f"probability_{k}"][i] for k in LABELS) == pytest.approx(1.0, abs=1e-4)


def test_model_served_by_mlflow_from_elsewhere(registered, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command,
            cwd=elsewhere,
            env=fresh_env(registered["store"]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_serving(port, proc, log_path)
        rows, labels = digit_rows(20)
        split = json.loads(rows.to_json(orient="split", index=False))
        assert split["columns"] == COLUMNS
        url = f"http://127.0.0.1:{port}/invocations"
        answer = post(url, {"dataframe_split": split})["predictions"]
        assert [set(p) for p in answer] == [{"prediction"}] * 20
        predicted = [p["prediction"] for p in answer]
        assert set(predicted) <= set(LABELS)
        assert sum(p == y for p, y in zip(predicted, labels, strict=True)) / 20 > 0.5  # the trained weights
        answer = post(url, {"dataframe_split": split, "params": {"probabilities": True}})["predictions"]
        assert [set(p) for p in answer] == [{"prediction", *[f"probability_{k}" for k in LABELS]}] * 20
        for p in answer:
            assert sum(p[f"probability_{k}"] for k in LABELS) == pytest.approx(1.0, abs=1e-4)
            assert p["prediction"] == max(LABELS, key=lambda k: p[f"probability_{k}"])
    finally:
        from contextlib import suppress

        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_example_sweep_nests_its_trials_under_one_parent(store, tmp_path):
    folder = example(tmp_path)
    out = run_cli("-m", *overrides(store, "task.channels=8,16", epochs=2), cwd=folder)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = runs_of(store)
    (parent,) = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(trials) == 2
    assert parent.info.status == "FINISHED" and {t.info.status for t in trials} == {"FINISHED"}
    assert sorted(t.data.params["task.channels"] for t in trials) == ["16", "8"]
    assert all("test_acc" in t.data.metrics for t in trials)


def test_example_preempted_then_resumed_into_the_same_run(store, tmp_path):
    folder = example(tmp_path)
    epochs = 15  # ~0.3 s each at batch size 16 (more when loaded): time enough to interrupt it after the first
    args = overrides(store, "data.batch_size=16", "trainer.early_stopping=false", epochs=epochs)
    client = MlflowClient(store)
    code, output = faults.interrupted(args, folder, client, 1, signal.SIGTERM)
    assert code == 143, output[-3000:]
    killed = faults.only_run(client)
    assert killed.info.status == "KILLED"
    assert len(faults.val_steps(client, killed.info.run_id)) < epochs

    again = run_cli(*args, "resume=auto", cwd=folder)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = faults.only_run(client)  # the same run, not a second one
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert int(resumed.data.tags["mlproj.resumed_from_epoch"]) >= 1
    assert faults.val_steps(client, resumed.info.run_id) == list(range(epochs))  # epochs continue, none missing
    assert resumed.data.metrics["test_acc"] > 0.5


def test_example_under_ddp_on_two_cpu_processes_is_one_run(store, tmp_path):
    folder = example(tmp_path)
    out = run_cli(*overrides(store, "trainer=ddp_cpu", epochs=2, one_cpu=False), cwd=folder, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Starting with 2 processes" in out.stdout + out.stderr
    (run,) = runs_of(store)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.strategy"] == "ddp" and run.data.params["trainer.devices"] == "2"
    assert [m.step for m in MlflowClient(store).get_metric_history(run.info.run_id, "val_acc")] == [0, 1]
    assert "test_acc" in run.data.metrics
