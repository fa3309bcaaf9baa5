"""The metric registry: names, directions, threshold conditions, and the torchmetrics objects behind them."""

from __future__ import annotations

import pytest
import torch

from mlproj import metrics
from mlproj.errors import ConfigError


def test_names_are_stage_underscore_metric():
    assert metrics.metric_names("regression", ("val",)) == ["val_loss", "val_mse", "val_rmse", "val_mae", "val_r2"]
    assert "test_auroc" in metrics.metric_names("classification")
    assert "test_r2" not in metrics.metric_names("classification")


@pytest.mark.parametrize(
    "name,task,mode",
    [
        ("val_loss", "regression", "min"),
        ("val_rmse", "regression", "min"),
        ("test_r2", "regression", "max"),
        ("val_accuracy", "classification", "max"),
        ("val_auroc", "classification", "max"),
        ("val_loss", "classification", "min"),
    ],
)
def test_direction_comes_from_the_definition(name, task, mode):
    assert metrics.mode(name, task) == mode


def test_unknown_metric_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        metrics.spec_of("val_accuracy", "regression", stages=("val",), key="trainer.monitor")
    assert str(info.value).startswith("trainer.monitor: 'val_accuracy' is not a metric of a regression run")
    assert "val_rmse" in str(info.value) and "test_rmse" not in str(info.value)


@pytest.mark.parametrize(
    "metric,condition,op,value,passes,fails",
    [
        ("test_r2", 0.4, ">=", 0.4, 0.5, 0.3),
        ("test_rmse", 60, "<=", 60.0, 55.0, 61.0),
        ("test_rmse", "<60", "<", 60.0, 59.9, 60.0),
        ("test_accuracy", ">0.9", ">", 0.9, 0.95, 0.9),
        ("val_mae", " <= 1e2 ", "<=", 100.0, 100.0, 100.1),
    ],
)
def test_threshold_conditions(metric, condition, op, value, passes, fails):
    task = "classification" if "accuracy" in metric else "regression"
    threshold = metrics.parse_threshold(metric, condition, task)
    assert (threshold.op, threshold.value) == (op, value)
    assert threshold.passes(passes) and not threshold.passes(fails)


@pytest.mark.parametrize("condition", ["abc", "=0.4", "<<3", "", True, None, [1]])
def test_malformed_thresholds_are_refused(condition):
    with pytest.raises(ConfigError, match=r"registry\.thresholds\.test_r2=.* is not a condition"):
        metrics.parse_threshold("test_r2", condition, "regression")


def test_thresholds_must_be_val_or_test_metrics_of_the_task():
    with pytest.raises(ConfigError, match=r"registry\.thresholds\.train_r2"):
        metrics.parse_threshold("train_r2", 0.1, "regression")
    with pytest.raises(ConfigError, match="test_accuracy"):
        metrics.parse_threshold("test_accuracy", 0.1, "regression")


@pytest.mark.parametrize("task,classes", [("regression", 0), ("classification", 2), ("classification", 4)])
def test_torchmetrics_objects_match_the_registry(task, classes):
    collection = metrics.build_metrics(task, classes, "val")
    expected = {f"val_{s.name}" for s in metrics.SPECS.values() if task in s.tasks and s.name != "loss"}
    if task == "regression":
        collection.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.5, 2.0]))
    elif classes == 2:
        collection.update(torch.tensor([0.9, 0.2, 0.7, 0.4]), torch.tensor([1, 0, 0, 1]))
    else:
        collection.update(torch.softmax(torch.randn(8, classes), -1), torch.arange(8) % classes)
    values = collection.compute()
    assert set(values) == expected
    if task == "regression":
        assert values["val_rmse"] == pytest.approx(values["val_mse"].sqrt())
        assert values["val_mae"] == pytest.approx((0 + 0.5 + 1) / 3)
    elif classes == 2:
        assert values["val_accuracy"] == pytest.approx(0.5)


def test_is_better_is_direction_aware():
    assert metrics.is_better("test_rmse", "regression", 1.0, 2.0)
    assert metrics.is_better("test_r2", "regression", 0.9, 0.8)
    assert not metrics.is_better("test_accuracy", "classification", 0.7, 0.8)
