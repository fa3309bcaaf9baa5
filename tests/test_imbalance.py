"""Imbalanced classes: class weights in the loss, the decision threshold chosen on validation and packaged,
and the registry gate refusing a classifier that never predicts a class."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from sklearn.datasets import make_classification

from mlproj import metrics, tags
from mlproj.errors import ConfigError
from mlproj.registry import gate as registry
from mlproj.tasks import imbalance
from mlproj.tasks.supervised import SupervisedTask
from tests.conftest import train_once


def _task(num_classes: int, **kw) -> SupervisedTask:
    net = torch.nn.Linear(3, 1 if num_classes == 2 else num_classes)
    return SupervisedTask(net, "classification", num_classes, partial(torch.optim.SGD, lr=0.1), **kw)


def test_class_weights_change_the_loss():
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.tensor([1] * 4 + [0] * 36)
    counts = [36, 4]
    plain, auto = (
        _task(2, class_counts=counts, class_weight="none"),
        _task(2, class_counts=counts, class_weight="balanced"),
    )
    auto.model.load_state_dict(plain.model.state_dict())
    assert auto.class_weights.tolist() == pytest.approx([40 / 72, 40 / 8])  # balanced: n / (k * n_c)
    assert not torch.isclose(auto._loss(auto(x), y)[0], plain._loss(plain(x), y)[0])
    # the minority's rows weigh 9 times a majority row's: a positive-only batch's loss grows 9x relative
    pos = y == 1
    ratio = auto._loss(auto(x[pos]), y[pos])[0] / plain._loss(plain(x[pos]), y[pos])[0]
    assert float(ratio) == pytest.approx(40 / 8)
    assert _task(3, class_counts=[10, 10, 10]).class_weights is None  # balanced classes: auto leaves the loss alone
    assert _task(2, class_counts=counts).class_weights is None  # two classes: auto leaves it to the threshold
    assert _task(3, class_counts=[50, 40, 10]).class_weights.tolist() == pytest.approx([100 / 150, 100 / 120, 100 / 30])
    given = _task(3, class_weight=[1.0, 2.0, 3.0])
    assert given.class_weights.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match=r"task.class_weight has 2 weights; the data has 3 classes"):
        _task(3, class_weight=[1.0, 2.0])
    with pytest.raises(ConfigError, match=r"task.class_weight='heavy': choose one of auto, balanced, none"):
        _task(2, class_weight="heavy")
    with pytest.raises(ConfigError, match=r"task.threshold=1.5: must be between 0 and 1"):
        _task(2, threshold=1.5)


def test_the_threshold_rule():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(int)
    p = np.clip(0.15 * y + rng.normal(0.1, 0.05, 400), 0, 1)  # under-confident on the positives
    assert imbalance.choose_threshold(p, y, "val_loss", [360, 40]) < 0.5  # rare positives: max minority F1
    assert imbalance.choose_threshold(p, y, "val_loss", [200, 200]) == 0.5  # balanced, loss monitored: 0.5
    assert imbalance.choose_threshold(p, y, "val_f1", [200, 200]) < 0.5  # monitoring f1 chooses for it


@pytest.fixture(scope="module")
def rare_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rare")
    x, y = make_classification(
        n_samples=1500, n_features=6, n_informative=4, weights=[0.93, 0.07], class_sep=0.7, random_state=1
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(label=np.where(y == 1, "yes", "no"))
    frame.to_csv(folder / "rare.csv", index=False)
    overrides = [f"data.path={folder / 'rare.csv'}", "data.target=label", "tracking.log_plots=false"]
    return folder, frame, train_once(folder, "data=csv", *overrides, "trainer.max_epochs=4",
                                     "trainer.limit_train_batches=1.0", "++registry.thresholds.test_auroc=0.5")  # fmt: skip


def test_threshold_chosen_on_validation_is_packaged_and_used(rare_run):
    folder, frame, (store, result, _) = rare_run
    client = MlflowClient(store)
    run = client.get_run(result.run_id)
    threshold = run.data.metrics["decision_threshold"]
    assert threshold != 0.5 and result.metrics["test_missed_classes"] == 0
    mlflow.set_tracking_uri(store)
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(folder / "model")))
    meta = json.loads(next(local.rglob("mlproj.json")).read_text())
    assert meta["preprocessing"]["threshold"] == pytest.approx(threshold)
    rows = frame.drop(columns="label").head(300)
    model = mlflow.pyfunc.load_model(result.model_uri)
    out = model.predict(rows, params={"probabilities": True})
    assert out["prediction"].tolist() == np.where(out["probability_yes"] > threshold, "yes", "no").tolist()
    assert np.allclose(out["probability_yes"] + out["probability_no"], 1.0)  # probabilities as the network gives
    argmax = np.where(out["probability_yes"] > 0.5, "yes", "no")
    assert (out["prediction"] != argmax).any()  # the threshold changed some decisions


def test_the_gate_refuses_a_classifier_that_never_predicts_a_class(store):
    from tests.test_registry import make_run

    run_id = make_run(store, "gate", {"test_auroc": 0.91, "test_missed_classes": 1.0})
    policy = registry.Policy(
        model_name="one-class",
        task="classification",
        thresholds=[metrics.parse_threshold("test_auroc", 0.8, "classification")],
    )
    client = MlflowClient(store)
    values = client.get_run(run_id).data.metrics
    decision = registry.gate(client, run_id, client.get_run(run_id).data.tags[tags.MODEL_URI], values, policy)
    assert decision.decision == "rejected" and all(c.passed for c in decision.checks)
    assert "never predicts 1 of the classes on the test split" in registry.report(decision, policy)
    found = client.get_run(run_id).data.tags
    assert found[tags.DECISION] == "rejected" and "test_missed_classes=1" in found[tags.REASON]
    assert client.search_registered_models() == []


def test_bad_class_weights_are_refused_at_startup(tmp_path, capsys):
    from tests.conftest import run_main

    store = tmp_path / "mlflow.db"
    code = run_main("data=breast_cancer", f"tracking.uri=sqlite:///{store}", "++task.class_weight=[1,2,3]")
    assert code == 2 and not store.exists()  # before any side effect
    assert "task.class_weight has 3 weights; the data has 2 classes" in capsys.readouterr().err
