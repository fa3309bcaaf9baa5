"""One output folder per command, even for commands started in the same second from one folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mlproj import outputs
from mlproj.config.schema import config_dir
from mlproj.errors import ConfigError
from mlproj.train import run
from tests.conftest import QUICK

# What Hydra's default folder becomes when several commands start in the same second: the same base
SAME_SECOND = "hydra.run.dir=${mlproj.unique:outputs/same}"


def test_the_default_folder_is_claimed_atomically(tmp_path):
    conf = OmegaConf.load(Path(config_dir()) / "config.yaml")
    assert OmegaConf.to_yaml(conf.hydra.run).startswith("dir: ${mlproj.unique:outputs/"), conf.hydra.run
    base = str(tmp_path / "outputs" / "12-00-00")
    first = outputs.unique_dir(base)
    assert outputs.unique_dir(base) == first  # Hydra reads the key again: the same folder
    outputs.new_command()
    second = outputs.unique_dir(base)
    assert (first, second) == (base, base + "-1") and Path(second).is_dir()


def test_a_lock_message_names_the_run_that_holds_the_folder(make_cfg, store, tmp_path):
    from filelock import FileLock

    folder = tmp_path / "out" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "mlflow_run.json").write_text(json.dumps({"run_id": "0123abcd"}))
    with FileLock(str(folder / ".lock")), pytest.raises(ConfigError, match="run 0123abcd is being trained by"):
        run(make_cfg(*QUICK, f"tracking.uri='{store}'", "model=linear"), [], tmp_path / "out")


@pytest.mark.slow
def test_four_commands_in_the_same_second_each_get_a_folder(store, tmp_path):
    command = [sys.executable, "-m", "mlproj", "debug=quick", "model=linear", f"tracking.uri={store}", SAME_SECOND]
    procs = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]
    results = [(p.wait(timeout=600), p.stdout.read()) for p in procs if p.stdout is not None]
    assert all(code == 0 for code, _ in results), [out[-2000:] for _, out in results]
    folders = sorted(p.name for p in (tmp_path / "outputs").iterdir())
    assert folders == ["same", "same-1", "same-2", "same-3"], folders
    run_ids = {
        json.loads((tmp_path / "outputs" / f / "checkpoints" / "mlflow_run.json").read_text())["run_id"]
        for f in folders
    }
    assert len(run_ids) == 4
