"""The whole path in-process against a real sqlite MLflow store: one run, its records, its model, its status."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import accuracy_score, r2_score

from mlproj.errors import ConfigError
from mlproj.train import run
from tests.conftest import QUICK, houses_frame, train_once


def runs_of(store: str, experiment: str) -> list:
    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """One default-style regression run (diabetes, MLP, 4 epochs), shared by the tests that inspect it."""
    store, result, cfg = train_once(
        tmp_path_factory.mktemp("regression"), "tracking.experiment=e2e", "trainer.max_epochs=4"
    )
    (only,) = runs_of(store, "e2e")
    return store, result, cfg, only


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """One classification run on a CSV with string labels, gaps and an ID column, shared likewise."""
    folder = tmp_path_factory.mktemp("segments")
    csv = folder / "houses.csv"
    houses_frame().to_csv(csv, index=False)
    overrides = ["data=csv", f"data.path='{csv}'", "data.target=segment", "data.exclude=[price]"]
    store, result, cfg = train_once(folder, *overrides, "trainer.max_epochs=6", "trainer.limit_train_batches=1.0")
    return store, result, cfg, csv


def test_regression_run_is_one_finished_run_with_every_metric_per_epoch(regression):
    store, result, _, only = regression
    assert only.info.run_id == result.run_id and only.info.status == "FINISHED"
    for name in ("train_loss", "val_loss", "val_rmse", "val_r2", "test_mse", "test_rmse", "test_mae", "test_r2"):
        assert name in only.data.metrics, name
    history = MlflowClient(store).get_metric_history(result.run_id, "val_rmse")
    assert [m.step for m in history] == [0, 1, 2, 3]  # one point per epoch, the epoch as the step
    assert only.data.metrics["test_rmse"] == pytest.approx(np.sqrt(only.data.metrics["test_mse"]), rel=1e-4)


def test_regression_run_records_its_config_tags_and_dataset(regression):
    store, result, _, only = regression
    data = only.data
    assert data.params["model.hidden_sizes"] == "[128, 64]"
    assert data.params["optimizer.lr"] == "0.001" and data.params["data.name"] == "diabetes"
    assert data.params["data._target_"] == "mlproj.data.sources.SklearnDataset"
    # keys other sources read are not params of this run (config/config.yaml keeps them all)
    assert not {"data.rows", "data.path", "data.sample_rows", "data.streaming"} & set(data.params)
    assert data.tags["mlproj.task"] == "regression"
    assert data.tags["mlproj.data.source"] == "sklearn.datasets.load_diabetes"
    assert data.tags["mlproj.overrides"] == '["tracking.experiment=e2e", "trainer.max_epochs=4"]'
    assert data.tags["mlproj.version"]
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(result.run_id, "config")}
    assert artifacts == {"config/config.yaml", "config/overrides.txt"}
    (dataset,) = only.inputs.dataset_inputs
    assert dataset.dataset.name == "diabetes" and dataset.dataset.digest
    assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "training"


def test_regression_model_reproduces_the_logged_test_metric_from_raw_rows(regression):
    """The logged model: best checkpoint, raw rows in, original units out; its schema is the table's columns."""
    from sklearn.datasets import load_diabetes

    from mlproj.data.prepare import prepare, resolve_task
    from mlproj.data.sources import load_table

    store, result, cfg, only = regression
    mlflow.set_tracking_uri(store)  # the model's URI (models:/m-...) is the store's
    table = load_table(cfg.data)
    test = prepare(table, resolve_task(table, cfg.data), cfg.data).splits["test"]
    model = mlflow.pyfunc.load_model(result.model_uri)
    predicted = model.predict(test.raw)["prediction"]
    assert r2_score(test.raw_target, predicted) == pytest.approx(only.data.metrics["test_r2"], abs=1e-4)
    assert list(model.metadata.get_input_schema().input_names()) == list(load_diabetes(as_frame=True).data.columns)


def test_csv_classification_predicts_labels_from_the_files_raw_rows(segments):
    store, result, _, csv = segments
    assert result.task == "classification"
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(result.model_uri)
    raw = pd.read_csv(csv)  # the file's raw rows: strings, gaps, an ID column, even the target
    out = model.predict(raw)
    assert set(out["prediction"]) <= {"premium", "standard"}
    assert accuracy_score(raw["segment"], out["prediction"]) > 0.6
    probs = model.predict(raw.head(20), params={"probabilities": True})
    assert list(probs.columns) == ["prediction", "probability_premium", "probability_standard"]
    assert np.allclose(probs[["probability_premium", "probability_standard"]].sum(axis=1), 1.0)


def test_csv_classification_model_reproduces_the_logged_accuracy(segments):
    from mlproj.data.prepare import prepare
    from mlproj.data.sources import load_table

    store, result, cfg, _ = segments
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(result.model_uri)
    test = prepare(load_table(cfg.data), "classification", cfg.data).splits["test"]
    logged = runs_of(store, "mlproj-houses")[0].data.metrics["test_accuracy"]
    assert accuracy_score(test.raw_target, model.predict(test.raw)["prediction"]) == pytest.approx(logged, abs=1e-6)


def test_multiclass_with_scheduler(make_cfg, store, tmp_path):
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", "data=wine", "scheduler=plateau", "trainer.monitor=val_f1")
    result = run(cfg, [], tmp_path / "out")
    assert {"test_accuracy", "test_f1", "test_precision", "test_recall", "test_auroc"} <= set(result.metrics)
    model = mlflow.pyfunc.load_model(result.model_uri)
    from sklearn.datasets import load_wine

    out = model.predict(load_wine(as_frame=True).data.head(5), params={"probabilities": True})
    assert set(out["prediction"]) <= {0, 1, 2} and out.shape == (5, 4)


def test_bad_input_creates_no_store_and_no_run(make_cfg, tmp_path):
    db = tmp_path / "fresh" / "mlflow.db"
    cfg = make_cfg(*QUICK, f"tracking.uri='sqlite:///{db}'", "++registry.thresholds.test_accuracy=0.9")
    with pytest.raises(ConfigError, match="test_accuracy"):
        run(cfg, [], tmp_path / "out")
    assert not db.exists() and not db.parent.exists()


def test_env_tracking_uri_and_artifacts_beside_the_store(make_cfg, tmp_path, monkeypatch):
    elsewhere = tmp_path / "stores"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere / 'team.db'}")
    result = run(make_cfg(*QUICK, "model=linear"), [], tmp_path / "out")
    assert result.tracking_uri == f"sqlite:///{elsewhere / 'team.db'}"
    exp = MlflowClient(result.tracking_uri).get_experiment_by_name(result.experiment)
    assert exp.artifact_location == (elsewhere / "mlruns" / "mlproj-diabetes").as_uri()
    assert not (tmp_path / "mlflow.db").exists()


def test_val_metrics_describe_the_packaged_best_checkpoint_not_the_last_epoch(tmp_path):
    """Early stopping ends past the best epoch; register and the champion rank by the run's (latest) val_*, so the
    run's latest val_loss must be the best checkpoint's, the model that is packaged and tested."""
    store, result, _ = train_once(tmp_path, "trainer.max_epochs=30", "optimizer.lr=0.05", "baseline=none")
    client = MlflowClient(store)
    history = sorted(client.get_metric_history(result.run_id, "val_loss"), key=lambda m: (m.step, m.timestamp))
    steps = sorted({m.step for m in history})
    assert steps == list(range(len(steps)))  # one step per epoch: the best's values re-sent at the last one
    epochs = [next(m.value for m in history if m.step == s) for s in steps]
    assert min(epochs) != epochs[-1], "the run should stop past its best epoch for this test to mean anything"
    assert client.get_run(result.run_id).data.metrics["val_loss"] == pytest.approx(min(epochs), rel=1e-6)
