"""Images through everything else, as users run it (processes of their own, so slow): MLflow's scoring server
answering a PNG, DDP over 2 CPU processes, a grid and an Optuna sweep, a preempted run resumed."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlproj.data.images import DigitsImages
from mlproj.train import run
from tests.conftest import QUICK, free_port, run_cli, wait_until_serving
from tests.reliability import faults
from tests.test_ecosystem import BIN, post

pytestmark = pytest.mark.slow

SMALL = ["data=digits_images", "model=cnn", "model.channels=[8]", "trainer.progress_bar=none", "quiet=true"]


def runs_of(store: str) -> list:
    client = MlflowClient(store)
    return client.search_runs([client.get_experiment_by_name("mlproj-DigitsImages").experiment_id])


def test_scoring_server_answers_a_png(make_cfg, store, tmp_path):
    # The run's own model (not the registry's champion: a 2-epoch CNN never predicting some digit is rightly
    # refused by the gate; serving is what is tested here)
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", *SMALL[:3])
    model_uri = run(cfg, [], tmp_path / "out").model_uri
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=store, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        wait_until_serving(port, proc, log_path)
        url = f"http://127.0.0.1:{port}/invocations"
        test = DigitsImages().prepare().splits["test"]
        pngs = [base64.b64encode(blob).decode() for blob in test.raw["image"].head(3)]
        assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
        answer = post(url, {"dataframe_records": [{"image": p} for p in pngs]})["predictions"]
        assert [set(p) for p in answer] == [{"prediction"}] * 3
        assert {p["prediction"] for p in answer} <= set(range(10))
        split = {"columns": ["image"], "data": [[p] for p in pngs]}
        scored = post(url, {"dataframe_split": split, "params": {"probabilities": True}})["predictions"]
        assert [p["prediction"] for p in scored] == [p["prediction"] for p in answer]
        assert sum(scored[0][f"probability_{k}"] for k in range(10)) == pytest.approx(1.0, abs=1e-4)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_images_under_ddp_on_two_cpu_processes_is_one_run(store, tmp_path):
    out = run_cli(
        *SMALL, "trainer=ddp_cpu", "trainer.max_epochs=2", f"tracking.uri='{store}'", cwd=tmp_path, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (only,) = runs_of(store)
    assert only.info.status == "FINISHED" and only.data.params["trainer.devices"] == "2"
    history = MlflowClient(store).get_metric_history(only.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 1]
    assert "test_accuracy" in only.data.metrics


def test_images_grid_and_optuna_sweeps(store, tmp_path):
    quick = [*SMALL[:1], "trainer.max_epochs=1", "trainer.progress_bar=none", "quiet=true", f"tracking.uri='{store}'"]
    grid = run_cli("-m", *quick, "model=cnn,mlp", "++registry.thresholds.test_accuracy=0.1", cwd=tmp_path)
    assert grid.returncode == 0, grid.stdout[-3000:] + grid.stderr[-3000:]
    optuna = ["hydra/sweeper=mlproj_optuna", "hydra.sweeper.n_trials=2", "optimizer.lr=choice(0.001,0.003)"]
    searched = run_cli("-m", *quick, "model=cnn", "model.channels=[8]", *optuna, cwd=tmp_path)
    assert searched.returncode == 0, searched.stdout[-3000:] + searched.stderr[-3000:]
    runs = runs_of(store)
    parents = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(trials) == 4, [r.data.tags.get("mlflow.runName") for r in runs]
    assert {t.info.status for t in trials} == {"FINISHED"}
    assert sorted(t.data.params["model._target_"] for t in trials).count("mlproj.models.CNN") == 3
    assert all("test_accuracy" in t.data.metrics for t in trials)
    assert any(t.data.tags.get("mlproj.registry.decision") == "registered" for t in trials)


def test_images_preempted_then_resumed_into_the_same_run(store, tmp_path):
    epochs = 12
    args = [*SMALL[:3], "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=plain"]
    args += [
        f"tracking.uri='{store}'",
        "data.batch_size=16",
        "trainer.early_stopping=false",
        "tracking.log_plots=false",
    ]
    args += [f"trainer.max_epochs={epochs}"]
    client = MlflowClient(store)
    code, output = faults.interrupted(args, tmp_path, client, 1, signal.SIGTERM, timeout=300)
    assert code == 143, output[-3000:]
    killed = faults.only_run(client)
    assert killed.info.status == "KILLED" and len(faults.val_steps(client, killed.info.run_id)) < epochs
    again = run_cli(*args, "resume=auto", cwd=tmp_path, timeout=900)  # 11 epochs: minutes on a loaded machine
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = faults.only_run(client)
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert faults.val_steps(client, resumed.info.run_id) == list(range(epochs))
    assert resumed.data.metrics["test_accuracy"] > 0.5


def test_benchmark_image_family_prints_its_ratio(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
    command = [sys.executable, str(script), "--family", "image", "--rows", "400", "--epochs", "1", "--threads", "1"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["family"] == "image" and result["mlproj_vs_raw"] > 0
    assert set(result["samples_per_s"]) == {"raw", "mlproj"} and "images/s" in out.stdout
