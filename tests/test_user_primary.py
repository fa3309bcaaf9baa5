"""A `config.yaml` in `--config-dir` is the user's primary config (composed under mlproj's schema, with
mlproj's groups still available), no longer silently shadowed by mlproj's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import QUICK, run_main

PRIMARY = """\
defaults:
  - mlproj_schema
  - _self_
  - data: wine
  - task: supervised
  - model: linear
  - optimizer: adam
  - scheduler: none
  - trainer: auto
  - tracking: local
  - registry: default
seed: 7
"""


@pytest.fixture
def user_conf(tmp_path: Path) -> Path:
    folder = tmp_path / "my_conf"
    folder.mkdir()
    (folder / "config.yaml").write_text(PRIMARY)
    return folder


def test_a_config_yaml_in_config_dir_is_the_primary_config(user_conf: Path, capsys) -> None:
    assert run_main("--config-dir", str(user_conf), "--cfg", "job") == 0
    out = capsys.readouterr().out
    assert "name: wine" in out and "_target_: mlproj.models.Linear" in out and "\nseed: 7" in out
    assert run_main("--config-dir", str(user_conf), "--cfg", "job", "model=mlp", "data=diabetes") == 0
    out = capsys.readouterr().out  # mlproj's own groups, on top of the user's primary config
    assert "name: diabetes" in out and "_target_: mlproj.models.MLP" in out and "\nseed: 7" in out


def test_a_run_from_the_users_primary_config(user_conf: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert run_main("--config-dir", str(user_conf), *QUICK, f"tracking.uri={store}") == 0
    (run,) = MlflowClient(store).search_runs([MlflowClient(store).get_experiment_by_name("mlproj-wine").experiment_id])
    assert run.data.params["seed"] == "7" and run.data.params["model._target_"] == "mlproj.models.Linear"


def test_a_config_yaml_outside_the_schema_is_refused_in_one_line(user_conf: Path, tmp_path: Path, capsys) -> None:
    (user_conf / "config.yaml").write_text("seed: 3\n")
    assert run_main("--config-dir", str(user_conf), "--cfg", "job") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mlproj: error: ") and "must start with `- mlproj_schema`" in line
