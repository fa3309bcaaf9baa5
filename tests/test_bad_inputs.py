"""Every bad input a user can type, in one table: each is refused at startup with mlproj's one line on stderr
(exit 2, no traceback) and leaves nothing behind: no MLflow store, experiment or run, and, when the config
alone is wrong, not even Hydra's run folder (the entry point checks it before Hydra makes one). In-process
(conftest's run_main), no training: every case is refused before a run exists."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_main

# Where each case is refused: "config" before Hydra runs the job (no folder at all), "data" once the data is
# read (Hydra's run folder exists, but no store, experiment or run).
CONFIG, DATA = "config", "data"
CSV = ["data=csv", "data.target=y"]

# (overrides, what the one line says, where)
CASES = [
    # arguments of model, optimizer and scheduler: signature, type hints, mlproj.config.constraints
    (["model.hidden_sizes=[0]"], "model.hidden_sizes=[0]: each value must be >= 1", CONFIG),
    (["model.dropout=1.5"], "model.dropout=1.5 must be in [0, 1)", CONFIG),
    (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum=-1 must be >= 0", CONFIG),
    (["+optimizer.betas=[2,3]"], "optimizer.betas=[2, 3]: each value must be in [0, 1)", CONFIG),
    (["optimizer.lr=0"], "optimizer.lr=0 must be > 0", CONFIG),
    (["optimizer.lr=inf"], "optimizer.lr=inf must be a finite number", CONFIG),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1 must be >= 0", CONFIG),
    (["scheduler=plateau", "scheduler.factor=2"], "scheduler.factor=2 must be in [0, 1)", CONFIG),
    (["model=resnet", "model.width=0"], "model.width=0 must be >= 1", CONFIG),
    (["model.activation=swish"], "model.activation='swish'", CONFIG),
    (["+model.dropuot=0.2"], "model.dropuot is not a parameter of mlproj.models.MLP; did you mean dropout?", CONFIG),
    # the table itself
    ([*CSV, "data.path=inf.csv"], "data: column 'a' of inf holds 30 infinite or too large value(s) such as inf", DATA),
    (
        [*CSV, "data.path=inf_target.csv"],
        "data: the target 'y' of inf_target holds 30 infinite or too large value(s)",
        DATA,
    ),
    (
        [*CSV, "data.path=huge.csv"],
        "column 'a' of huge holds 30 infinite or too large value(s) such as 1e+300",
        DATA,
    ),
    ([*CSV, "data.path=dup.csv"], "data.path='dup.csv' has duplicate column names: a", DATA),
    ([*CSV, "data.path=missing.csv"], "data.path='missing.csv': no such file", DATA),
    (
        ["data=csv", "data.path=houses.csv", "data.target=prize"],
        "is not a column of houses.csv; columns: house_id",
        DATA,
    ),
    ([*CSV, "data.path=empty.csv"], "holds no rows", DATA),
    (["data=csv"], "data.path is required (a .csv or .parquet file); set it with data.path=...", CONFIG),
    # the data's own keys
    (["data=synthetic", "data.noise=-5"], "data.noise=-5 must be >= 0", DATA),
    (["data.split_seed=-1"], "data.split_seed=-1 must be in [0, 4294967295]", DATA),
    (["data.id_unique_ratio=5"], "data.id_unique_ratio=5 must be in (0, 1]", DATA),
    (["data.val_fraction=1.5"], "data.val_fraction=1.5 must be between 0 and 1", DATA),
    (["data.batch_size=0"], "data.batch_size=0 must be >= 1", DATA),
    (["data=synthetic", "data.rows=5"], "data.rows=5 must be >= 20", DATA),
    # where runs and models go
    (["tracking.uri=htp:/bad::uri"], "tracking.uri='htp:/bad::uri': MLflow has no store for scheme 'htp'", CONFIG),
    (["tracking.uri=ftp://host/x"], "tracking.uri='ftp://host/x': MLflow has no store for scheme 'ftp'", CONFIG),
    (["tracking.uri=sqlite:////proc/nope/x.db"], "tracking.uri: cannot write in /proc", CONFIG),
    (["tracking.uri=http://host:port"], "tracking.uri='http://host:port' is not a valid URI", CONFIG),
    (["tracking.uri=http://"], "tracking.uri='http://' names no host", CONFIG),
    (["tracking.registry_uri=gopher://x"], "tracking.registry_uri='gopher://x': MLflow has no store", CONFIG),
    (["tracking=server"], "tracking.uri is required for tracking=server", CONFIG),
    (["tracking.artifact_location=file:///proc/x"], "tracking.artifact_location: cannot write in /proc", CONFIG),
    (["registry.model_name=a/b"], "registry.model_name='a/b': a registered model's name cannot contain '/'", CONFIG),
    (["registry.model_name=a:b"], "registry.model_name='a:b': a registered model's name cannot contain", CONFIG),
    (["tracking=databricks", "registry.model_name=main.ml.m"], "tracking=databricks has no credentials", DATA),
    (["tracking=databricks"], "Unity Catalog (registry_uri=databricks-uc) needs a three-level name", DATA),
    (["tracking.extra_pip_requirements=['scikit-learn=1.0']"], "'scikit-learn=1.0' is not a requirement", CONFIG),
    (["tracking.retry_for=-1"], "tracking.retry_for=-1.0 must be >= 0", CONFIG),
    # names, not paths
    (["tracking.experiment=.."], "tracking.experiment='..' is a name, not a path", CONFIG),
    (["tracking.experiment=a/b"], "tracking.experiment='a/b' is a name, not a path", CONFIG),
    (["tracking.experiment='a\nb'"], "tracking.experiment='a\\nb' holds a control character", CONFIG),
    (["tracking.run_name=../x"], "tracking.run_name='../x' is a name, not a path", CONFIG),
    (["tracking.experiment= "], "tracking.experiment must not be empty", CONFIG),
    (["tracking.experiment=" + "x" * 501], "tracking.experiment is 501 characters long; at most 500", CONFIG),
    # did-you-mean, with or without `+`
    (["trainer.max_epoch=3"], "trainer.max_epoch is not a setting of trainer; did you mean max_epochs?", CONFIG),
    (["+trainer.max_epoch=3"], "trainer.max_epoch is not a setting of trainer; did you mean max_epochs?", CONFIG),
    (["trainer.max_epochz=3"], "trainer.max_epochz is not a setting of trainer; did you mean max_epochs?", CONFIG),
    (["tracking.experimnt=x"], "tracking.experimnt is not a setting of tracking; did you mean experiment?", CONFIG),
    (["seedd=1"], "seedd is not a setting; did you mean seed?", CONFIG),
    (["data=diabets"], "data=diabets: did you mean diabetes? options: breast_cancer, csv, diabetes,", CONFIG),
    (["model=mpl"], "model=mpl: did you mean mlp? options: cnn,", CONFIG),
    (["data=nope"], "data=nope is not an option of data; options: breast_cancer, csv", CONFIG),
    (["model=transformer"], "model=transformer", CONFIG),
    (["data=diabetes", "data.noise=1"], "data.noise is not a setting of data; keys: task", CONFIG),
    (["trainer.accumulate_grad_batches=2"], "add it with +trainer.accumulate_grad_batches=2", CONFIG),
    # types, ranges and choices of the schema
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: Value 'abc' of type 'str' could not be converted", CONFIG),
    (["trainer.accelerator=tpu"], "trainer.accelerator=tpu: Invalid value 'tpu', expected one of [auto,", CONFIG),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 must be >= 1", CONFIG),
    (["trainer.min_epochs=5", "trainer.max_epochs=2"], "trainer.min_epochs=5 exceeds trainer.max_epochs=2", CONFIG),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1.0 must be >= 0", CONFIG),
    (["trainer.gradient_clip_val=nan"], "trainer.gradient_clip_val=nan must be a finite number", CONFIG),
    (["tuner.max_lr=inf"], "tuner.max_lr=inf must be a finite number", CONFIG),
    (["seed=-1"], "seed=-1 must be in [0, 4294967295]", CONFIG),
    (["resume=latest"], "resume=latest is not valid; choose one of: null", CONFIG),
    (["tracking.extra_pip_requirements=[a=1]"], "tracking.extra_pip_requirements=[a=1]: ", CONFIG),
    # metric names, once the data fixed the task
    (["++registry.thresholds.test_accuracy=0.9"], "choose one of: val_loss", DATA),
    (["++registry.thresholds.test_r2=high"], "is not a condition", CONFIG),
    (["trainer.monitor=val_accuracy"], "trainer.monitor: 'val_accuracy' is not a metric of a regression run", DATA),
]


@pytest.fixture
def tables(tmp_path: Path, houses_csv: Path) -> None:
    """The bad tables the cases name (written in the working folder, tmp_path)."""
    rows = np.arange(120.0)
    pd.DataFrame({"a": [1.0, 2, 3, np.inf] * 30, "b": rows, "y": rows}).to_csv("inf.csv", index=False)
    pd.DataFrame({"a": [1.0, 2, 3, 4] * 30, "b": rows, "y": [1.0, np.inf, 2, 3] * 30}).to_csv(
        "inf_target.csv", index=False
    )
    pd.DataFrame({"a": [1.0, 2, 3, 1e300] * 30, "b": rows, "y": rows}).to_csv("huge.csv", index=False)
    Path("dup.csv").write_text("a,a,y\n" + "".join(f"{i},{2 * i},{i}\n" for i in range(120)))
    Path("empty.csv").write_text("y,x\n")


def test_the_table_holds_forty_cases_or_more():
    assert len(CASES) >= 40


@pytest.mark.parametrize("args,message,where", CASES, ids=[" ".join(a) for a, _, _ in CASES])
def test_bad_input_is_refused_in_one_line_and_creates_nothing(
    tmp_path, tables, capsys, monkeypatch, args, message, where
):
    for var in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no.databrickscfg"))
    before = set(tmp_path.iterdir())
    code = run_main(*args)
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert code == 2, out.err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("mlproj: error: "), out.err[-3000:]
    assert message in lines[0], lines[0]
    assert "Traceback" not in out.err + out.out
    made = {p.name for p in set(tmp_path.iterdir()) - before}
    assert not made & {"mlflow.db", "mlruns", "mlflow.db.lock"}, made  # no store, so no experiment or run
    if where == CONFIG:
        assert not made, made  # refused before Hydra made the run's folder


def test_what_is_refused_above_has_good_neighbours_that_pass(tables, monkeypatch):
    """The checks refuse the bad value, not its neighbours: an excluded column may hold anything, Databricks
    credentials from the environment or a profile pass, a workspace path is a Databricks experiment's name."""
    from omegaconf import OmegaConf

    from mlproj.config.stores import check_databricks_credentials, check_name, check_tag_key
    from mlproj.errors import ConfigError
    from mlproj.plan import make_plan
    from tests.conftest import compose_cfg

    make_plan(compose_cfg(*CSV, "data.path=huge.csv", "data.exclude=[a]", "optimizer=sgd", "optimizer.momentum=0"))
    tracking = OmegaConf.create({"uri": "databricks", "registry_uri": "databricks-uc"})
    for var in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "databrickscfg")
    with pytest.raises(ConfigError, match=r"add a \[DEFAULT\] profile to databrickscfg"):
        check_databricks_credentials(tracking)
    Path("databrickscfg").write_text("[team]\nhost = https://x\ntoken = t\n")
    check_databricks_credentials(OmegaConf.create({"uri": "databricks://team", "registry_uri": None}))
    monkeypatch.setenv("DATABRICKS_HOST", "https://x")
    monkeypatch.setenv("DATABRICKS_TOKEN", "t")
    check_databricks_credentials(tracking)
    check_name("tracking.experiment", "/Shared/mlproj", workspace_path=True)
    with pytest.raises(ConfigError, match="workspace path"):
        check_name("tracking.experiment", "/Shared/../x", workspace_path=True)
    check_name("tracking.run_name", "lr=0.1 bs:64 (retry)")
    check_tag_key("tracking.tags", "team/owner: x.y-z")
    for bad in ("a;b", "../x", "/abs", "a//b"):  # keys a config file may hold (the command line cannot quote them)
        with pytest.raises(ConfigError, match=f"tracking.tags: '{re.escape(bad)}' is not a valid tag key"):
            check_tag_key("tracking.tags", bad)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://x/y")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI='ftp://x/y': MLflow has no store for scheme 'ftp'"):
        make_plan(compose_cfg())
    assert not {"mlflow.db", "mlruns", "outputs"} & {p.name for p in Path.cwd().iterdir()}
