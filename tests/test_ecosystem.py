"""MLflow's own tools with mlproj, for real: a tracking server over HTTP, model serving, plots, sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlproj.train import run
from tests.conftest import QUICK, free_port, run_cli, segment_overrides, wait_until_serving

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_training_sweep_and_registration_over_http(mlflow_server, tmp_path):
    server = ["tracking=server", f"tracking.uri={mlflow_server}", "tracking.experiment=over-http", "quiet=true"]
    out = run_cli(*server, "debug=quick", "++registry.thresholds.test_r2=-100", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = run_cli("-m", "model=linear,mlp", *server, "debug=quick", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    register = subprocess.run(
        [sys.executable, "-m", "mlproj.register", "--tracking-uri", mlflow_server, "--experiment", "over-http"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert register.returncode == 0, register.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # all went to the server

    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("over-http").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}  # 1 run + 1 parent + 2 trials
    trained = next(r for r in runs if r.data.tags.get("mlproj.registry.decision") == "registered")
    artifacts = {a.path for a in client.list_artifacts(trained.info.run_id, "plots")}
    assert "plots/learning_curves.png" in artifacts  # uploaded through the server's artifact proxy
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/over-http-diabetes@champion")  # downloaded over HTTP
    from sklearn.datasets import load_diabetes

    assert len(model.predict(load_diabetes(as_frame=True).data.head(3))) == 3
    versions = client.search_model_versions("name = 'over-http-diabetes'")
    assert len(versions) == 2  # the gated run, then the best run via mlproj.register


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_serving_answers_raw_rows_over_http(make_cfg, store, houses_csv, tmp_path):
    cfg = make_cfg(*segment_overrides(store, houses_csv), "registry.enabled=true", "registry.model_name=houses")
    run(cfg, [], tmp_path / "out")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=store, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    command = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/houses@champion", "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until_serving(port, proc, tmp_path / "serve.log")
        url = f"http://127.0.0.1:{port}/invocations"
        rows = pd.read_csv(houses_csv).drop(columns=["segment", "price"]).head(3)
        rows.loc[0, "city"] = None  # a gap
        rows.loc[1, "city"] = "marseille"  # never seen in training
        split = json.loads(rows.to_json(orient="split", index=False))
        answer = post(url, {"dataframe_split": split})
        assert [set(p) for p in answer["predictions"]] == [{"prediction"}] * 3
        assert {p["prediction"] for p in answer["predictions"]} <= {"premium", "standard"}
        records = json.loads(rows.to_json(orient="records"))
        answer = post(url, {"dataframe_records": records, "params": {"probabilities": True}})
        first = answer["predictions"][0]
        assert set(first) == {"prediction", "probability_premium", "probability_standard"}
        assert first["probability_premium"] + first["probability_standard"] == pytest.approx(1.0)
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


@pytest.mark.parametrize(
    "data,expected",
    [
        ("diabetes", {"learning_curves", "predicted_vs_actual", "residuals", "permutation_importance"}),
        ("wine", {"learning_curves", "confusion_matrix", "roc_curve", "precision_recall", "permutation_importance"}),
    ],
)
def test_plots_are_valid_pngs(make_cfg, store, tmp_path, data, expected):
    import matplotlib.image

    result = run(make_cfg(*QUICK, f"tracking.uri='{store}'", f"data={data}"), [], tmp_path / "out")
    client = MlflowClient(store)
    paths = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert paths == {f"plots/{name}.png" for name in expected} | {"plots/permutation_importance.csv"}
    for path in paths - {"plots/permutation_importance.csv"}:
        local = Path(client.download_artifacts(result.run_id, path, str(tmp_path)))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = matplotlib.image.imread(local).shape
        assert height > 200 and width > 200


def test_plain_progress_and_system_metrics_without_a_tty(tmp_path):
    env = {"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2", "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING": "1"}
    args = ["model=linear", "trainer.max_epochs=3", "trainer.early_stopping=false", "tracking.system_metrics=true"]
    out = run_cli(*args, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "train_loss" in lines[0] and "val_rmse" in lines[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (only,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert any(k.startswith("system/") for k in only.data.metrics), sorted(only.data.metrics)

    quiet = run_cli("model=linear", "trainer.max_epochs=2", "quiet=true", cwd=tmp_path)
    assert quiet.returncode == 0 and "epoch " not in quiet.stdout and "GPU available" not in quiet.stderr
    assert "FINISHED" in quiet.stdout


def test_grid_sweep_nests_trials_under_one_parent_with_a_summary(tmp_path):
    sys_path = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # tests.models for a failing trial
    args = ["-m", "model=linear", "model._target_=mlproj.models.Linear,tests.models.FailsAtStep"]
    out = run_cli(*args, "optimizer.lr=0.01,0.1", "debug=quick", "quiet=true", cwd=tmp_path, env=sys_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("the sweep goes on") == 2
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and len(trials) == 4
    assert sorted(t.info.status for t in trials) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert {t.info.run_name for t in trials} == {
        f"model._target_={m},optimizer.lr={lr}"
        for m in ("mlproj.models.Linear", "tests.models.FailsAtStep")
        for lr in (0.01, 0.1)
    }
    assert parent.info.status == "FINISHED"
    best = min((t for t in trials if t.info.status == "FINISHED"), key=lambda t: t.data.metrics["sweep_objective"])
    assert parent.data.tags["mlproj.sweep.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_rmse"] == best.data.metrics["sweep_objective"]
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "sweep/trials.csv", str(tmp_path)))
    assert len(table) == 4 and set(table["status"]) == {"FINISHED", "FAILED"}
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")} == {
        "sweep/trials.csv",
        "sweep/objective.png",
    }

    failing = run_cli(
        "-m", "model=linear", "model._target_=tests.models.FailsAtStep", "debug=quick", cwd=tmp_path, env=sys_path
    )
    assert failing.returncode == 1 and "every trial of the sweep failed" in failing.stderr
    parents = [r for r in client.search_runs(["1"]) if r.data.tags.get("mlproj.sweep.role") == "parent"]
    assert sorted(p.info.status for p in parents) == ["FAILED", "FINISHED"]


def test_mlflow_run_sweep_entry_point_makes_mlflows_run_the_parent(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [str(BIN / "mlflow"), "run", str(repo), "-e", "sweep", "--env-manager", "local", "--experiment-name", "S"]
    command += ["-P", "overrides=model=linear,mlp debug=quick quiet=true"]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("S").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "sweep"]
    assert parent.data.tags["mlproj.sweep.role"] == "parent"
    assert len(runs) == 3 and all(
        r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in runs if r != parent
    )


def test_rich_progress_bar_with_live_metrics_on_a_terminal(tmp_path):
    import shutil

    if shutil.which("script") is None:
        pytest.skip("util-linux `script` (a pseudo-terminal) is not installed")
    command = f"{sys.executable} -m mlproj model=linear trainer.max_epochs=2 trainer.early_stopping=false"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    # Rich's bar, not plain lines: 1-based epochs, optimizer steps and their rate, no v_num
    assert "━━━━" in out.stdout and "Epoch 2/2" in out.stdout and "steps/s" in out.stdout
    assert "v_num" not in out.stdout
    assert "val_loss" in out.stdout and "train_loss" in out.stdout
    assert "epoch 1/2 " not in out.stdout
