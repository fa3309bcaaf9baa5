"""Every extension point, trained through mlproj's own path (`mlproj.train.run`, a real sqlite store):
a user's data module, a user's task module, a loss, a metric, a Trainer flag, a callback, the tuner."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from mlproj import metrics
from mlproj.errors import ConfigError
from mlproj.train import run
from tests.conftest import QUICK


def _run(make_cfg, store, tmp_path, *overrides):
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", *overrides)
    result = run(cfg, list(overrides), tmp_path / "out")
    found = MlflowClient(store).get_run(result.run_id)
    assert found.info.status == "FINISHED"
    return result, found


def _load(result):
    import mlflow

    mlflow.set_tracking_uri(result.tracking_uri)
    return mlflow.pyfunc.load_model(result.model_uri)


def test_a_users_data_module_trains_the_builtin_task(make_cfg, store, tmp_path):
    result, found = _run(make_cfg, store, tmp_path, "data._target_=tests.extensions.LinearData")
    assert {"test_rmse", "test_r2", "val_rmse"} <= set(found.data.metrics)
    assert found.data.tags["mlproj.data.name"] == "LinearData" and found.data.tags["mlproj.task"] == "regression"
    # The default option's table keys (at their defaults) are not the user's module's: not passed, not logged.
    assert {k for k in found.data.params if k.startswith("data.")} == {"data._target_", "data.batch_size"}
    model = _load(result)
    rows = pd.DataFrame([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], columns=["x0", "x1", "x2", "x3"])
    assert list(model.predict(rows).columns) == ["prediction"] and len(model.predict(rows)) == 2


def test_a_users_task_module_on_a_builtin_table(make_cfg, store, tmp_path):
    result, found = _run(
        make_cfg,
        store,
        tmp_path,
        "task._target_=tests.extensions.TinyRegressor",
        "+task.hidden=4",
        "tracking.extra_pip_requirements=[scikit-learn]",  # what the user's code imports
    )
    assert {"train_loss", "val_loss", "test_loss", "test_score"} <= set(found.data.metrics)
    assert found.data.params["task.hidden"] == "4"
    assert not any(k.startswith(("model.", "optimizer.")) for k in found.data.params)  # the built-in task's parts
    assert found.data.tags["mlproj.task"] == metrics.CUSTOM
    raw = pd.DataFrame({c: [0.01, -0.02] for c in ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")})
    assert len(_load(result).predict(raw)) == 2  # raw rows through the table's preprocessing, then the user's module
    import mlflow

    requirements = Path(mlflow.pyfunc.get_model_dependencies(result.model_uri)).read_text().split()
    assert "scikit-learn" in requirements and any(r.startswith("pytorch-lightning==") for r in requirements)


def test_a_users_task_metric_needs_a_direction_and_must_be_logged(make_cfg, store, tmp_path):
    task = "task._target_=tests.extensions.TinyRegressor"
    with pytest.raises(
        ConfigError, match=r"trainer.monitor: 'val_score': .*set metric_directions.val_score=min or max"
    ):
        run(make_cfg(*QUICK, f"tracking.uri='{store}'", task, "trainer.monitor=val_score"), [], tmp_path / "a")
    # The gate compares versions on registry.primary_metric: a direction it cannot know is refused at startup.
    cfg = make_cfg(*QUICK, f"tracking.uri='{store}'", task, "registry.enabled=true", "registry.primary_metric=test_x")
    with pytest.raises(ConfigError, match=r"registry.primary_metric: 'test_x': mlproj cannot know"):
        run(cfg, [], tmp_path / "b")
    assert MlflowClient(store).get_experiment_by_name("mlproj-diabetes") is None  # refused before anything was created
    # A full name declares its metric at every stage: val_score=max says test_score=max too.
    result, _ = _run(
        make_cfg,
        store,
        tmp_path,
        task,
        "trainer.monitor=val_score",
        "++metric_directions.val_score=max",
        "++registry.thresholds.test_score=-1e9",  # bare number: "at least this good", in the declared direction
    )
    assert result.extra["registry"].decision == "registered"
    cfg = make_cfg(
        *QUICK, f"tracking.uri='{store}'", task, "trainer.monitor=val_nope", "++metric_directions.val_nope=max"
    )
    with pytest.raises(
        ConfigError, match=r"trainer.monitor='val_nope' is not logged by TinyRegressor; it logged: .*val_loss"
    ):
        run(cfg, [], tmp_path / "c")


def test_a_loss_from_config(make_cfg):
    from mlproj.plan import build_task, make_plan

    cfg = make_cfg(*QUICK, "++loss._target_=torch.nn.HuberLoss", "+loss.delta=0.5")
    module, _ = build_task(cfg, make_plan(cfg))
    assert isinstance(module.loss_fn, torch.nn.HuberLoss) and module.loss_fn.delta == 0.5
    out, y = torch.tensor([[0.0], [3.0]]), torch.tensor([0.0, 0.0])
    assert module._loss(out, y)[0] == pytest.approx(torch.nn.functional.huber_loss(out.squeeze(-1), y, delta=0.5))
    # Cross-entropy with label smoothing on a binary table: one logit per class, not one logit.
    cfg = make_cfg(
        *QUICK, "data=breast_cancer", "++loss._target_=torch.nn.CrossEntropyLoss", "+loss.label_smoothing=0.1"
    )
    module, recipe = build_task(cfg, make_plan(cfg))
    assert recipe["required"]["out_features"] == 2 and not module.binary


def test_an_extra_metric_with_its_direction_from_torchmetrics(make_cfg, store, tmp_path):
    _, found = _run(make_cfg, store, tmp_path, "++metrics.mape._target_=torchmetrics.MeanAbsolutePercentageError")
    assert {"val_mape", "test_mape"} <= set(found.data.metrics)
    assert metrics.mode("val_mape", "regression") == "min"  # MeanAbsolutePercentageError.higher_is_better
    # A classification wrapper says its direction only once built (task and num_classes are offered).
    _, found = _run(make_cfg, store, tmp_path, "data=wine", "++metrics.kappa._target_=torchmetrics.CohenKappa")
    assert "test_kappa" in found.data.metrics and metrics.mode("val_kappa", "classification") == "max"


def test_a_trainer_flag_a_callback_and_the_tuner_in_a_run(make_cfg, store, tmp_path):
    overrides = [
        "++trainer.accumulate_grad_batches=2",
        "+callbacks=lr_monitor",
        "tuner.lr_find=true",
        "tuner.num_training=60",
        "trainer.limit_train_batches=1.0",  # the finder needs as many training steps as it tries
        "trainer.log_every_n_steps=1",  # a step_train_loss point per optimizer step: the steps can be counted
        "data=synthetic",
        "data.rows=2000",
        "data.batch_size=32",
    ]
    _, found = _run(make_cfg, store, tmp_path, *overrides)
    client, metrics_ = MlflowClient(store), found.data.metrics
    assert found.data.params["trainer.accumulate_grad_batches"] == "2"
    # The flag took effect: one optimizer step per 2 minibatches (a logged param alone proves nothing).
    from mlproj.data.prepare import prepare, resolve_task
    from mlproj.data.sources import load_table

    cfg = make_cfg(*QUICK, *overrides)
    table = load_table(cfg.data)
    train_rows = len(prepare(table, resolve_task(table, cfg.data), cfg.data).splits["train"].y)
    steps = cfg.trainer.max_epochs * math.ceil(math.ceil(train_rows / 32) / 2)
    assert [m.step for m in client.get_metric_history(found.info.run_id, "step_train_loss")] == list(
        range(1, steps + 1)
    )
    # The tuner's learning rate is the one the run trained at: LearningRateMonitor (through mlproj's logger)
    # saw it at every epoch, not the configured 0.001.
    tuned = metrics_["tuned_lr"]
    assert 1e-6 <= tuned <= 1.0 and tuned != pytest.approx(0.001)
    seen = [m.value for m in client.get_metric_history(found.info.run_id, "lr-Adam")]
    assert len(seen) == cfg.trainer.max_epochs and all(v == pytest.approx(tuned) for v in seen), seen


def test_a_table_with_a_layout_keeps_it_for_a_conv_net(make_cfg, store, tmp_path):
    """data=digits_grid: every pixel column in order, unscaled (data=digits drops the constant border pixels and
    standardises each one, so no 8x8 image is left for a CNN)."""
    from mlproj.plan import make_plan

    assert make_plan(make_cfg("data=digits_grid")).in_features == 64
    assert make_plan(make_cfg("data=digits")).in_features < 64
    result, found = _run(
        make_cfg,
        store,
        tmp_path,
        "data=digits_grid",
        "model._target_=tests.extensions.GridCNN",
        "~model.hidden_sizes",
        "~model.dropout",
        "~model.activation",
        "~model.norm",
    )
    assert "test_accuracy" in found.data.metrics
    pixels = pd.DataFrame([[0.0] * 64], columns=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)])
    assert len(_load(result).predict(pixels)) == 1


@pytest.mark.slow
def test_a_model_from_a_users_folder_loads_in_a_fresh_process_elsewhere(tmp_path):
    """`model._target_` from a folder of the user's (not installed): the package travels in the model's code/."""
    import os
    import subprocess
    import sys

    from tests.conftest import run_cli

    project = tmp_path / "project"
    (project / "mynets").mkdir(parents=True)
    (project / "mynets" / "__init__.py").write_text("from mynets.residual import ResidualMLP\n")
    (project / "mynets" / "residual.py").write_text(
        "import torch\n\n\nclass ResidualMLP(torch.nn.Module):\n"
        "    def __init__(self, in_features: int, out_features: int, width: int = 16) -> None:\n"
        "        super().__init__()\n"
        "        self.inp, self.hidden = torch.nn.Linear(in_features, width), torch.nn.Linear(width, width)\n"
        "        self.out = torch.nn.Linear(width, out_features)\n\n"
        "    def forward(self, x):\n        h = torch.relu(self.inp(x))\n        return self.out(h + torch.relu(self.hidden(h)))\n"
    )
    (project / "conf" / "model").mkdir(parents=True)
    (project / "conf" / "model" / "residual.yaml").write_text("_target_: mynets.ResidualMLP\nwidth: 8\n")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_cli("--config-dir", "conf", "model=residual", *QUICK, f"tracking.uri={store}", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    uri = next(line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith("model: models:/"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        f"import mlflow, pandas as pd; mlflow.set_tracking_uri({store!r}); m = mlflow.pyfunc.load_model({uri!r})\n"
        "cols = ['age','sex','bmi','bp','s1','s2','s3','s4','s5','s6']\n"
        "print(len(m.predict(pd.DataFrame([[0.01] * 10], columns=cols))))\n"
        "import mynets; print(mynets.__file__)"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    count, where = loaded.stdout.split()[-2:]
    assert count == "1" and "/code/mynets/" in where  # the model's own copy, not the project folder


@pytest.mark.parametrize("option", ["diabetes", "wine", "digits_grid", "parquet_stream"])
def test_a_users_data_class_over_any_builtin_option_drops_only_the_options_values(make_cfg, option):
    from mlproj.plan import drop_table_defaults

    extra = ["data.path=x.parquet", "data.target=y"] if option == "parquet_stream" else []
    cfg = make_cfg(f"data={option}", *extra, "data._target_=tests.extensions.LinearData")
    drop_table_defaults(cfg)
    assert set(cfg.data) - {"_target_", "batch_size"} == ({"path", "target"} if extra else set())
    cfg = make_cfg("data._target_=tests.extensions.LinearData", "data.val_fraction=0.3")  # a value of the user's
    drop_table_defaults(cfg)
    assert cfg.data.val_fraction == 0.3  # kept: the class's signature refuses it, by name


def test_the_builtin_tasks_parts_cannot_be_set_in_its_own_config(make_cfg):
    from mlproj.plan import check_task

    with pytest.raises(ConfigError, match=r"task.monitor is set by mlproj; do not set it in the config"):
        check_task(make_cfg("+task.monitor=val_r2"))


def test_the_batch_size_finders_choice_is_kept_in_the_checkpoint(make_cfg):
    from mlproj.plan import make_plan
    from mlproj.training.fit import datamodule

    cfg = make_cfg()
    plan = make_plan(cfg)
    found = datamodule(cfg, plan)
    found.batch_size = 7  # what tuner.scale_batch_size would leave
    resumed = datamodule(cfg, make_plan(make_cfg()))
    resumed.load_state_dict(found.state_dict())  # Lightning does this from the checkpoint on resume
    assert resumed.batch_size == 7 and resumed.train_dataloader().batch_size == 7
