"""Judging a model: mlproj.evaluate on a labelled file, mlflow.models.evaluate on a packaged model, the baselines
beside every table run and the gate's require_beats_baseline, permutation importance, k-fold cross-validation."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlproj.plan import make_plan
from tests.conftest import QUICK, compose_cfg, houses_frame, run_main, train_once


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory):
    """diabetes, 2 quick epochs: a network that gradient boosting beats."""
    folder = tmp_path_factory.mktemp("regression")
    return (folder, *train_once(folder, "data=diabetes"))


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory):
    """The houses table's string labels (premium / standard), from a CSV."""
    folder = tmp_path_factory.mktemp("classification")
    houses_frame().to_csv(folder / "houses.csv", index=False)
    data = ["data=csv", f"data.path='{folder / 'houses.csv'}'", "data.target=segment", "data.exclude=[price]"]
    return (folder, *train_once(folder, *data))


def labelled_test_split(folder: Path, cfg) -> Path:
    """The run's own test split (same config, same split) with its target column, as a user's file."""
    test = make_plan(cfg).prepared.splits["test"]
    rows = test.raw.copy()
    rows[test.raw_target.name or "target"] = test.raw_target.to_numpy()
    path = folder / "labelled.csv"
    rows.to_csv(path, index=False)
    return path


def evaluation_runs(store: str) -> list:
    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]  # beside the training run: mlproj-<data>
    return client.search_runs(experiments, "tags.`mlproj.evaluation.model` != ''")


@pytest.mark.parametrize("fixture", ["regression", "classification"])
def test_evaluate_gives_the_training_runs_test_metrics(fixture: str, request, capsys) -> None:
    from mlproj.evaluate import main

    folder, store, result, cfg = request.getfixturevalue(fixture)
    path = labelled_test_split(folder, cfg)
    assert main([result.model_uri, str(path), "--tracking-uri", store]) == 0
    printed = capsys.readouterr().out
    (run,) = [r for r in evaluation_runs(store) if r.data.tags["mlproj.evaluation.file"] == str(path)]
    logged = run.data.metrics
    trained = {k: v for k, v in result.metrics.items() if k.startswith("test_") and k != "test_loss"}
    assert set(logged) == set(trained)
    for name, value in trained.items():
        assert logged[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
        assert name in printed
    assert run.info.status == "FINISHED" and run.data.tags["mlproj.evaluation.of_run"] == result.run_id
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id, "evaluation")}
    if fixture == "classification":
        assert {"evaluation/per_class.json", "evaluation/confusion_matrix.png"} <= artifacts
        assert "premium" in printed and "standard" in printed  # the per-class report
    else:
        assert {"evaluation/predicted_vs_actual.png", "evaluation/residuals.png"} <= artifacts


def test_evaluate_into_a_given_run_as_eval_metrics(classification) -> None:
    from mlproj.evaluate import main

    folder, store, result, cfg = classification
    path = labelled_test_split(folder, cfg)
    assert main([result.model_uri, str(path), "--tracking-uri", store, "--run-id", result.run_id]) == 0
    metrics = MlflowClient(store).get_run(result.run_id).data.metrics
    assert metrics["eval_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_evaluate_refuses_a_file_without_the_target_in_one_line(classification, capsys) -> None:
    from mlproj.evaluate import main

    folder, store, result, _ = classification
    path = folder / "unlabelled.csv"
    houses_frame(rows=20).drop(columns=["segment"]).to_csv(path, index=False)
    assert main([result.model_uri, str(path), "--tracking-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert "'segment'" in err and "target" in err and len(err.splitlines()) == 1
    assert main(["models:/no-such-model/1", str(path), "--tracking-uri", store]) == 2


@pytest.mark.parametrize("fixture", ["regression", "classification"])
def test_mlflow_models_evaluate_takes_the_packaged_model(fixture: str, request) -> None:
    folder, store, result, cfg = request.getfixturevalue(fixture)
    rows = pd.read_csv(labelled_test_split(folder, cfg))
    target = "segment" if fixture == "classification" else "target"
    mlflow.set_tracking_uri(store)
    with mlflow.start_run():
        model_type = "classifier" if fixture == "classification" else "regressor"
        found = mlflow.models.evaluate(result.model_uri, rows, targets=target, model_type=model_type)
    if fixture == "classification":  # before: ValueError (a one-column frame is 2-D), now MLflow's own accuracy
        assert found.metrics["accuracy_score"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)
    else:
        assert found.metrics["root_mean_squared_error"] == pytest.approx(result.metrics["test_rmse"], rel=1e-4)


def test_baseline_metrics_logged_beside_the_networks(regression) -> None:
    _, store, result, _ = regression
    logged = MlflowClient(store).get_run(result.run_id).data
    for name in ("rmse", "mae", "mse", "r2"):
        assert f"baseline_test_{name}" in logged.metrics and f"baseline_val_{name}" in logged.metrics
        assert result.metrics[f"baseline_test_{name}"] == pytest.approx(logged.metrics[f"baseline_test_{name}"])
    assert logged.tags["mlproj.baseline"] == "hgb"
    assert 0 < logged.metrics["baseline_seconds"] < 30
    # HistGradientBoosting on diabetes: an R² near what it gets on its own (~0.4), far from the 2-epoch network's
    assert logged.metrics["baseline_test_r2"] > 0.2


def test_the_summary_shows_the_baseline_beside_the_network(capsys) -> None:
    from mlproj.console import print_summary
    from mlproj.results import RunResult

    values = {"test_rmse": 60.0, "baseline_test_rmse": 55.5, "test_loss": 0.7, "baseline_seconds": 0.3}
    print_summary(RunResult("r1", "e", "sqlite:///x.db", values, None, "regression"))
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if line.strip().startswith("test_rmse")]
    assert row.split()[:3] == ["test_rmse", "60", "55.5"]
    assert not any(line.strip().startswith("baseline_test_rmse") for line in lines)


def test_require_beats_baseline_refuses_a_network_that_loses(regression) -> None:
    from mlproj.registry.gate import Policy, gate

    _, store, result, _ = regression
    client = MlflowClient(store, registry_uri=store)
    values = client.get_run(result.run_id).data.metrics
    assert values["test_rmse"] > values["baseline_test_rmse"]  # 2 quick epochs lose to gradient boosting
    policy = Policy("diabetes-net", "regression", primary_metric="test_rmse", require_beats_baseline=True)
    decision = gate(client, result.run_id, result.model_uri, values, policy)
    assert decision.decision == "rejected" and decision.reason.startswith("loses to the baseline: test_rmse=")
    assert client.get_run(result.run_id).data.tags["mlproj.registry.decision"] == "rejected"
    winning = {**values, "test_rmse": values["baseline_test_rmse"] - 1}
    assert gate(client, result.run_id, result.model_uri, winning, policy, dry_run=True).decision == "registered"
    without = {k: v for k, v in values.items() if not k.startswith("baseline_")}
    assert "no baseline_test_rmse" in gate(client, result.run_id, "m", without, policy, dry_run=True).reason


def test_require_beats_baseline_needs_a_baseline() -> None:
    from mlproj.config.checks import check_config
    from mlproj.errors import ConfigError

    cfg = compose_cfg("data=diabetes", "baseline=none", "registry.require_beats_baseline=true")
    with pytest.raises(ConfigError, match="require_beats_baseline=true needs a baseline"):
        check_config(cfg)
    check_config(compose_cfg("data=diabetes", "baseline=linear", "registry.require_beats_baseline=true"))


def test_permutation_importance_plot_and_table_on_the_run(classification) -> None:
    folder, store, result, _ = classification
    client = MlflowClient(store)
    names = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/permutation_importance.png", "plots/permutation_importance.csv"} <= names
    local = client.download_artifacts(result.run_id, "plots/permutation_importance.csv", str(folder))
    table = pd.read_csv(local)
    assert list(table.columns) == ["feature", "importance", "std"]
    assert set(table["feature"]) == {"house_id", "area", "rooms", "city", "heating"}
    # The segment is price above the median, and price is mostly area: shuffling area hurts most.
    assert table.iloc[0]["feature"] == "area" and table.iloc[0]["importance"] > 0
    assert table.set_index("feature").loc["house_id", "importance"] == 0  # an ID, dropped by preprocessing


def test_cv_folds_make_a_parent_with_one_nested_run_per_fold(tmp_path: Path, store: str, capsys) -> None:
    code = run_main(
        *QUICK, f"tracking.uri='{store}'", "data=wine", "cv.folds=2", "quiet=true", "tracking.log_model=false"
    )
    assert code == 0
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("mlproj-wine").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("mlproj.cv.role") == "parent"]
    folds = [r for r in runs if r.data.tags.get("mlproj.cv.role") == "fold"]
    assert len(folds) == 2 and {r.data.tags["mlflow.parentRunId"] for r in folds} == {parent.info.run_id}
    assert sorted(r.data.tags["mlproj.cv.fold"] for r in folds) == ["0", "1"]
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in folds)
    for name in ("test_accuracy", "baseline_test_accuracy"):
        values = [r.data.metrics[name] for r in folds]
        assert parent.data.metrics[f"{name}_mean"] == pytest.approx(np.mean(values))
        assert parent.data.metrics[f"{name}_std"] == pytest.approx(np.std(values))
    assert "cross-validation run" in capsys.readouterr().out
    # The folds' test parts cover the table once: 178 wine rows between them.
    from mlproj.cv import fold_indices

    plan = make_plan(compose_cfg("data=wine"))
    tests = np.concatenate([part["test"] for part in fold_indices(plan, 2)])
    assert sorted(tests) == list(range(178))


def test_cv_folds_refuses_one_fold() -> None:
    from mlproj.config.checks import check_config
    from mlproj.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cv\.folds"):
        check_config(compose_cfg("data=wine", "cv.folds=1"))
    with pytest.raises(ConfigError, match=r"cv\.folds .* trainer\.devices=1"):
        check_config(compose_cfg("data=wine", "cv.folds=3", "trainer=ddp_cpu"))
