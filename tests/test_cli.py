"""The commands users type: `python -m mlproj ...` and the `mlproj` script, in their own process (slow), and the
error cases in-process through `mlproj.__main__.main` (what the console script calls), two of them also as
real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli


@pytest.mark.slow
def test_default_job_tracks_one_finished_run(tmp_path):
    out = run_cli("debug=quick", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()
    assert "FINISHED" in out.stdout and "test_rmse" in out.stdout and "mlflow ui --backend-store-uri" in out.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlproj.command"] == "python -m mlproj debug=quick"
    assert run.data.tags["mlproj.overrides"] == '["debug=quick"]'
    assert run.data.tags["mlproj.model_uri"].startswith("models:/")


@pytest.mark.slow
def test_csv_job_predicts_raw_rows_of_the_file(tmp_path, houses_csv):
    out = run_cli("data=csv", f"data.path={houses_csv.name}", "data.target=price", "debug=quick", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["mlproj-houses"], output_format="list")
    assert run.data.tags["mlproj.task"] == "regression"
    assert "ID-like" in out.stderr + out.stdout  # house_id is dropped with a warning
    model = mlflow.pyfunc.load_model(run.data.tags["mlproj.model_uri"])
    rows = pd.read_csv(houses_csv).drop(columns=["price"]).head(10)  # raw: the ID column, strings, gaps
    predicted = model.predict(rows)["prediction"]
    assert len(predicted) == 10 and predicted.notna().all(), predicted  # notna().all() alone holds for no rows


# The bad inputs refused in-process (one line, exit 2, nothing created): tests/test_bad_inputs.py.


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message,code",
    [
        (["optimizer.lr=0"], "optimizer.lr=0 must be > 0", 2),
        (["data=diabets"], "data=diabets: did you mean diabetes?", 2),
    ],
)
def test_bad_input_as_a_user_types_it(tmp_path, args, message, code):
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == code and message in out.stderr + out.stdout and "Traceback" not in out.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_full_error_shows_the_traceback(tmp_path):
    out = run_cli("optimizer.lr=0", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    # the error itself, raised (exit 1, Python's for an uncaught exception), with its full traceback
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.rstrip().splitlines()[-1] == "mlproj.errors.ConfigError: optimizer.lr=0 must be > 0", out.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_help_and_cfg_answer_without_training(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    from mlproj.config.schema import config_dir

    for group in ("data", "model"):  # every option of the package's own config folder, as Hydra lists them
        found = ", ".join(sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml")))
        assert f"{group}: {found}\n" in out.stdout, out.stdout
    assert "digits_images, image_folder" in out.stdout and "text_csv, timeseries, wine" in out.stdout
    assert "task: supervised" in out.stdout
    assert "trainer: auto, cpu, ddp, ddp_cpu, gpu" in out.stdout
    script = Path(sys.executable).parent / "mlproj"
    import subprocess

    cfg = subprocess.run([str(script), "--cfg", "job", "data=wine"], cwd=tmp_path, capture_output=True, text=True)
    assert cfg.returncode == 0 and "name: wine" in cfg.stdout
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_mlflow_run_logs_into_the_run_mlflow_created(tmp_path):
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # --env-manager local
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(repo), "--env-manager", "local"]
    command += ["-P", "overrides=model=linear debug=quick", "--experiment-name", "from-mlflow-run"]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (run,) = runs  # exactly one run: the one `mlflow run` created
    assert client.get_experiment(run.info.experiment_id).name == "from-mlflow-run"
    assert run.info.status == "FINISHED" and "test_rmse" in run.data.metrics
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert run.data.params["model._target_"] == "mlproj.models.Linear"
    assert run.data.tags["mlproj.model_uri"].startswith("models:/")


@pytest.mark.slow
def test_bring_your_own_module_without_forking(tmp_path):
    """A user's nn.Module in their own package, a config in their own folder: --config-dir and _target_."""
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from torch import nn\n\n\n"
        "class Tiny(nn.Sequential):\n"
        "    def __init__(self, in_features: int, out_features: int, width: int = 4) -> None:\n"
        "        super().__init__(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, out_features))\n"
    )
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "tiny.yaml").write_text("_target_: mynets.Tiny\nwidth: 6\n")
    # mynets importable; the PYTHONPATH this test runs under kept (the checkout under test, not another install)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)}
    out = run_cli("--config-dir", "my_conf", "model=tiny", "debug=quick", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert run.data.params["model._target_"] == "mynets.Tiny" and run.data.params["model.width"] == "6"
    bad = run_cli("--config-dir", "my_conf", "model=tiny", "model.width=wide", cwd=tmp_path, env=env)
    # the user's own class has its keys checked like a built-in one: a config error in one line, no new run
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr[-3000:]
    assert lines[0].startswith("mlproj: error: model.width='wide'"), lines
    assert len(client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])) == 1
