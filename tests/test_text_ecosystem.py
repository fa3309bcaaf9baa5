"""Text tables through everything else, for real: serving over HTTP, grid and Optuna sweeps, DDP on CPU, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mlproj.data.text import TextFile
from mlproj.train import run
from tests.conftest import free_port, run_cli, wait_until_serving
from tests.reliability import faults
from tests.test_ecosystem import post
from tests.test_text import text_overrides
from tests.texts import reviews_frame

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def write_reviews(tmp_path: Path, rows: int = 300) -> list[str]:
    reviews_frame(rows).to_csv(tmp_path / "reviews.csv", index=False)
    return [
        "data=text_csv",
        f"data.path={tmp_path / 'reviews.csv'}",
        "data.text_column=review",
        "data.target=sentiment",
    ]


def test_text_model_is_served_over_http(make_cfg, store, tmp_path):
    write_reviews(tmp_path)
    # The run's own model, not the registry's champion: a tiny run that misses a class is rightly refused by the
    # gate; serving is what is tested here
    model_uri = run(make_cfg(*text_overrides(store, tmp_path / "reviews.csv")), [], tmp_path / "out").model_uri
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=store, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until_serving(port, proc, tmp_path / "serve.log")
        url = f"http://127.0.0.1:{port}/invocations"
        records = [{"review": "Superb film, great actors!"}, {"review": "awful and boring"}, {"review": ""}]
        answer = post(url, {"dataframe_records": records})
        assert [set(p) for p in answer["predictions"]] == [{"prediction"}] * 3
        assert {p["prediction"] for p in answer["predictions"]} <= {"neg", "pos"}
        split = {"columns": ["review"], "data": [["never seen words only"]]}
        answer = post(url, {"dataframe_split": split, "params": {"probabilities": True}})
        (only,) = answer["predictions"]
        assert only["probability_neg"] + only["probability_pos"] == pytest.approx(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


def test_text_grid_and_optuna_sweeps(tmp_path):
    data = write_reviews(tmp_path)
    grid = run_cli("-m", *data, "model=embedding_bag,text_transformer", "debug=quick", "quiet=true", cwd=tmp_path)
    assert grid.returncode == 0, grid.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlproj-reviews").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(t.info.run_name for t in trials) == ["model=embedding_bag", "model=text_transformer"]
    assert {t.info.status for t in trials} == {"FINISHED"} and "best_val_accuracy" in parent.data.metrics

    search = ["-m", "hydra/sweeper=mlproj_optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler=random"]
    search += ["model=embedding_bag", "model.embed_dim=choice(16,32)", "optimizer.lr=tag(log, interval(1e-3, 1e-1))"]
    optuna_run = run_cli(*search, *data, "debug=quick", "quiet=true", "tracking.experiment=search", cwd=tmp_path)
    assert optuna_run.returncode == 0, optuna_run.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("search").experiment_id])
    trials = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "trial"]
    assert len(trials) == 3 and all("sweep_objective" in t.data.metrics for t in trials)  # val_accuracy


def test_text_ddp_cpu_run_is_one_run_over_both_shards(store, tmp_path):
    data = write_reviews(tmp_path)
    args = ["trainer=ddp_cpu", "debug=quick", "trainer.max_epochs=2", f"tracking.uri='{store}'", *data]
    out = run_cli(*args, "model=embedding_bag", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Starting with 2 processes" in out.stdout + out.stderr
    client = MlflowClient(store)
    (only,) = client.search_runs([client.get_experiment_by_name("mlproj-reviews").experiment_id])
    assert only.info.status == "FINISHED" and only.data.params["trainer.devices"] == "2"
    # Each rank tested half of the test split; the logged accuracy is the whole split's.
    test = TextFile(path=str(tmp_path / "reviews.csv"), text_column="review", target="sentiment").prepare()
    rows = test.splits["test"]
    mlflow.set_tracking_uri(store)
    predicted = mlflow.pyfunc.load_model(only.data.tags["mlproj.model_uri"]).predict(rows.raw)["prediction"]
    accuracy = float(np.mean(predicted.to_numpy() == rows.raw_target.to_numpy()))
    assert accuracy == pytest.approx(only.data.metrics["test_accuracy"], abs=1e-6)


def test_text_run_preempted_and_resumed_into_the_same_run(store, tmp_path):
    data = write_reviews(tmp_path, rows=4000)  # about 0.5 s per epoch: 44 batches of a network sleeping 10 ms
    args = [*data, "model=embedding_bag", "model._target_=tests.texts.SlowEmbeddingBag", "+model.delay=0.01"]
    args += ["trainer.max_epochs=8", "trainer.early_stopping=false"]
    args += ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=plain", "tracking.log_plots=false"]
    args += [f"tracking.uri={store}"]
    client = MlflowClient(store)
    code, output = faults.interrupted(args, tmp_path, client, 2, signal.SIGTERM, timeout=300)
    assert code == 143, output[-3000:]
    killed = faults.only_run(client)
    assert killed.info.status == "KILLED"
    again = run_cli(*args, "resume=auto", cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1])})
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = faults.only_run(client)
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert int(resumed.data.tags["mlproj.resumed_from_epoch"]) >= 2
    assert faults.val_steps(client, resumed.info.run_id) == list(range(8))
    assert "test_accuracy" in resumed.data.metrics
