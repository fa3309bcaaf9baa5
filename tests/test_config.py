"""Composition of every config option, and the startup checks that refuse bad values by key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ValidationError

from mlproj.config.checks import check_config
from mlproj.config.families import check_targets
from mlproj.config.schema import config_dir
from mlproj.errors import ConfigError

GROUPS = sorted(p.name for p in Path(config_dir()).iterdir() if p.is_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in GROUPS for o in options(g)],
)
def test_every_option_composes_and_validates(make_cfg, group, option):
    extra = ["tracking.uri=http://127.0.0.1:5000"] if option == "server" else []
    extra += ["data.path=x.csv", "data.target=y"] if option == "csv" else []
    extra += ["data.path=x.parquet", "data.target=y"] if option == "parquet_stream" else []
    series = ["data.path=x.csv", "data.time=t", "data.target=y", "data.horizon=1", "data.window=2"]
    extra += series if option == "timeseries" else []
    extra += ["data.path=photos"] if option == "image_folder" else []
    extra += ["data.path=x.csv", "data.text_column=t", "data.target=y"] if option == "text_csv" else []
    append = "+" if group == "callbacks" else ""  # not in the defaults list: added with +callbacks=<option>
    cfg = make_cfg(f"{append}{group}={option}", *extra)
    check_config(cfg)
    check_targets(cfg)


def test_groups_are_the_documented_ones():
    assert GROUPS == [
        "callbacks",
        "data",
        "debug",
        "experiment",
        "hparams_search",
        "hydra",
        "model",
        "optimizer",
        "registry",
        "scheduler",
        "task",
        "tracking",
        "trainer",
    ]
    assert options("hparams_search") == ["optuna"]
    assert options("callbacks") == ["lr_monitor"]
    assert options("data") == [
        "breast_cancer",
        "csv",
        "diabetes",
        "digits",
        "digits_grid",
        "digits_images",
        "image_folder",
        "parquet_stream",
        "synthetic",
        "text_csv",
        "timeseries",
        "wine",
    ]
    assert options("task") == ["supervised"]
    assert options("model") == ["cnn", "embedding_bag", "gru", "linear", "mlp", "resnet", "tcn", "text_transformer"]
    assert options("optimizer") == ["adam", "adamw", "sgd"]
    assert options("scheduler") == ["cosine", "none", "plateau"]
    assert options("trainer") == ["auto", "cpu", "ddp", "ddp_cpu", "gpu"]
    assert options("tracking") == ["databricks", "local", "server"]


def test_defaults(make_cfg):
    cfg = make_cfg()
    assert cfg.data._target_ == "mlproj.data.sources.SklearnDataset" and cfg.data.name == "diabetes"
    assert cfg.task._target_ == "mlproj.tasks.supervised.SupervisedTask"
    assert cfg.model._target_ == "mlproj.models.MLP"
    assert cfg.optimizer._partial_ is True
    assert not cfg.scheduler
    assert cfg.trainer.accelerator.value == "auto"
    assert cfg.tracking.backend.value == "local" and cfg.tracking.uri is None


def test_threshold_override_syntax(make_cfg):
    cfg = make_cfg("++registry.thresholds.test_r2=0.4", '++registry.thresholds.test_rmse="<60"')
    assert cfg.registry.thresholds == {"test_r2": 0.4, "test_rmse": "<60"}


def test_experiment_preset_overrides_groups(make_cfg):
    cfg = make_cfg("experiment=diabetes_mlp")
    assert cfg.optimizer._target_ == "torch.optim.AdamW"
    assert cfg.scheduler.T_max == cfg.trainer.max_epochs == 150
    assert cfg.trainer.monitor == "val_rmse"


@pytest.mark.parametrize(
    "override,cause,says",
    [
        ("data=nope", None, "Could not find 'data/nope'"),
        ("trainer.max_epochz=3", ConfigAttributeError, "Key 'max_epochz' not in 'TrainerConfig'"),
        ("trainer.max_epochs=abc", ValidationError, "Value 'abc' of type 'str' could not be converted to Integer"),
        ("trainer.accelerator=tpu", ValidationError, "Invalid value 'tpu', expected one of [auto, cpu, gpu"),
        ("trainer.strategy=fsdp", ValidationError, "Invalid value 'fsdp', expected one of [auto"),
    ],
)
def test_schema_refuses_at_composition(make_cfg, override, cause, says):
    """The schema (dataclasses in Hydra's ConfigStore) refuses these while composing, before mlproj runs."""
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg(override)
    found = info.value.__cause__
    assert (found is None) if cause is None else isinstance(found, cause), repr(found)
    assert says in str(found or info.value)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 must be >= 1"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 must be >= 1"),
        (["trainer.min_epochs=5", "trainer.max_epochs=2"], "trainer.min_epochs=5 exceeds"),
        (["trainer.precision=8"], "trainer.precision='8' is not valid; choose one of: 32-true"),
        (["trainer.devices=[-1]"], "trainer.devices"),
        (["trainer.devices=0"], "trainer.devices=0"),
        (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5"),
        (["trainer.num_nodes=0"], "trainer.num_nodes=0 must be >= 1"),
        (["trainer.strategy=single_device", "trainer.devices=2"], "trainer.strategy=single_device needs"),
        (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0 must be >= 1"),
        (["trainer.steps_per_chunk=0"], "trainer.steps_per_chunk=0 must be >= 1"),
        (["data.val_fraction=1.5"], "data.val_fraction=1.5 must be between 0 and 1"),
        (["data.val_fraction=0.5", "data.test_fraction=0.45"], "at least 10% for training"),
        (["data.batch_size=0"], "data.batch_size=0 must be >= 1"),
        (["data=csv"], "data.path is required (a .csv or .parquet file); set it with data.path=..."),
        (["data=csv", "data.path=a.csv"], "data.target is required (the label column)"),
        (["data=parquet_stream", "data.path=a.csv", "data.target=y"], "data=parquet_stream reads a .parquet file"),
        (["data=synthetic", "data.rows=5"], "data.rows=5 must be >= 20"),
        (["data.task=clasification"], "data.task='clasification': Input should be 'auto', 'regression'"),
        (["data=parquet_stream", "data.path=a.parquet", "data.target=y", "data.sample_rows=5"], "data.sample_rows=5"),
        (
            ["data=parquet_stream", "data.path=a.parquet", "data.target=y", "trainer.limit_val_batches=0.5"],
            "trainer.limit_val_batches=0.5: a stream has no length",
        ),
        (["tracking=server"], "tracking.uri is required for tracking=server"),
        (["tracking.experiment= "], "tracking.experiment must not be empty"),
        (["optimizer.lr=0"], "optimizer.lr=0 must be > 0"),
        (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 must be > 0"),
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1 must be >= 0"),
        (["+model.dropuot=0.1"], "model.dropuot is not a parameter of mlproj.models.MLP; did you mean dropout?"),
        (["+model.zzz=0.1"], "model.zzz is not a parameter of mlproj.models.MLP; parameters: hidden_sizes"),
        (["model.activation=swish"], "model.activation='swish': Input should be 'relu'"),
        (["model.hidden_sizes=[a]"], "model.hidden_sizes=['a']"),
        (["model._target_=nowhere.Model"], "model._target_='nowhere.Model' cannot be imported"),
        (["+optimizer.betas_typo=1"], "optimizer.betas_typo is not a parameter of torch.optim.Adam"),
        (["+model.in_features=3"], "model.in_features is set by mlproj"),
        (["+trainer.max_epoch=5"], "trainer.max_epoch is not a setting of trainer; did you mean max_epochs?"),
        (["+data.targte=y"], "data.targte is not a parameter of mlproj.data.sources.SklearnDataset"),
        (["+epochs=3"], "epochs is not a setting; keys: data, task, model"),
    ],
)
def test_cross_field_checks_name_the_key(make_cfg, overrides, message):
    from mlproj.config import families
    from mlproj.config.checks import check_streaming_limits

    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
        check_targets(cfg)
        if families.resolve(cfg.data, "data", "data").streaming:  # as mlproj.plan.make_plan does
            check_streaming_limits(cfg)
        families.build(cfg.data, "data", "data")  # a source checks its values as it is built
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_user_module_through_target(make_cfg):
    # Any importable nn.Module taking in_features/out_features works, with its own keys checked.
    cfg = make_cfg("model=linear", "model._target_=torch.nn.Bilinear")
    with pytest.raises(ConfigError, match="must accept in_features \\(passed by mlproj\\)"):
        check_targets(cfg)
    cfg = make_cfg("model=linear", "model._target_=tests.models.NeedsWidth")
    with pytest.raises(ConfigError, match=r"model is missing required value.*: width"):
        check_targets(cfg)
    cfg = make_cfg("model=linear", "+model.bias=false")
    check_targets(cfg)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU refusal")
@pytest.mark.parametrize(
    "overrides,message",
    [
        (["trainer=gpu"], "trainer.accelerator=gpu but this machine has no CUDA GPU"),
        (["trainer.accelerator=cuda"], "trainer.accelerator=cuda but this machine has no CUDA GPU"),
        (["trainer.precision=16-mixed"], "trainer.precision=16-mixed needs a GPU"),
        (["trainer=ddp"], "trainer.strategy=ddp with trainer.accelerator=gpu but this machine has no CUDA GPU; set"),
        (["trainer.strategy=ddp"], "trainer.strategy=ddp with trainer.accelerator=auto .*trainer=ddp_cpu"),
    ],
)
def test_gpu_requests_without_a_gpu_are_refused_at_startup(make_cfg, overrides, message):
    from mlproj.config.checks import check_devices

    with pytest.raises(ConfigError, match=message):
        check_devices(make_cfg(*overrides))
    check_devices(make_cfg("trainer.precision=bf16-mixed"))
    check_devices(make_cfg("trainer=ddp_cpu"))


@pytest.mark.parametrize(
    "overrides,own,other",
    [
        ([], {"name"}, {"rows", "noise", "path", "sample_rows"}),
        (["data=synthetic"], {"rows", "noise", "classes"}, {"name", "path", "sample_rows"}),
        (["data=csv", "data.path=x.csv", "data.target=y"], {"path", "target"}, {"rows", "sample_rows", "name"}),
        (["data=parquet_stream", "data.path=x.parquet", "data.target=y"], {"sample_rows", "num_workers"}, {"rows"}),
    ],
)
def test_a_data_source_has_only_its_own_keys(make_cfg, overrides, own, other):
    """`data` is a `_target_` node: each source's keys are its constructor's, so params hold no other source's."""
    import inspect

    from mlproj.config import families

    cfg = make_cfg(*overrides)
    params = set(inspect.signature(families.resolve(cfg.data, "data", "data")).parameters)
    assert own <= params and not (other & params)
    assert set(cfg.data) - {"_target_"} <= params
