"""Multi-process training: presets, the rank sharding of in-memory batches, and one DDP run end to end
(2 CPU processes over gloo) that leaves exactly one MLflow run, one model version and one output directory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient

from mlproj.data import batches
from mlproj.data.batches import TensorBatches
from tests.conftest import run_cli


def test_strategy_is_a_choice_named_with_its_options(make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg("trainer.strategy=fsdp")
    assert "expected one of [auto, ddp, single_device]" in str(info.value.__cause__)
    cfg = make_cfg("trainer=ddp", "trainer.num_nodes=4", "trainer.devices=[0,2]")
    assert cfg.trainer.strategy.value == "ddp" and cfg.trainer.num_nodes == 4


def test_build_trainer_passes_strategy_and_nodes(make_cfg, tmp_path):
    from pytorch_lightning.strategies import DDPStrategy

    from mlproj.training.trainer import RunLogger, build_trainer

    cfg = make_cfg("trainer=ddp_cpu", "trainer.num_nodes=2")
    trainer = build_trainer(cfg.trainer, "regression", RunLogger(None, ""), tmp_path / "checkpoints", quiet=True)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.num_nodes == 2 and trainer.num_devices == 2 and trainer.world_size == 4


@pytest.mark.parametrize(
    "env,zero",
    [
        ({}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3"}, False),
        ({"NODE_RANK": "1"}, False),
        ({"SLURM_PROCID": "2"}, False),
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, False),
    ],
)
def test_rank_zero_from_launcher_env(monkeypatch, env, zero):
    from mlproj.ranks import is_rank_zero

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_rank_zero() is zero


def test_multi_process_training_is_refused_inside_a_multirun(make_cfg):
    from mlproj.errors import ConfigError
    from mlproj.sweeps import runs as sweeps

    with pytest.raises(ConfigError, match=r"trainer\.devices=2 inside a multirun"):
        sweeps.check_devices(make_cfg("trainer=ddp_cpu"))
    with pytest.raises(ConfigError, match=r"trainer\.num_nodes=2 inside a multirun"):
        sweeps.check_devices(make_cfg("trainer=cpu", "trainer.num_nodes=2"))


def _per_rank(monkeypatch, loader: TensorBatches, world: int) -> list[list[torch.Tensor]]:
    """What each of `world` ranks would iterate in one epoch (the epoch counter advances once per rank)."""
    shards = []
    for rank in range(world):
        monkeypatch.setattr(batches, "rank_and_world", lambda rank=rank: (rank, world))
        loader.epoch = 0
        shards.append([y for _, y in loader])
        assert len(shards[-1]) == len(loader)
    return shards


@pytest.mark.parametrize("n,world,bs", [(103, 2, 10), (100, 4, 7), (5, 3, 2)])
def test_train_batches_shard_one_permutation(monkeypatch, n, world, bs):
    x, y = torch.arange(n).float().unsqueeze(1), torch.arange(n)
    shards = _per_rank(monkeypatch, TensorBatches(x, y, bs, shuffle=True, seed=3), world)
    assert len({len(s) for s in shards}) == 1  # the same number of batches on every rank: no rank waits
    rows = [torch.cat(s) for s in shards]
    assert len({len(r) for r in rows}) == 1
    together = torch.cat(rows)
    assert set(together.tolist()) == set(range(n))  # every row, in a shared permutation
    assert len(together) - n < world  # padded by fewer than `world` repeated rows, as DistributedSampler does
    monkeypatch.setattr(batches, "rank_and_world", lambda: (0, 1))
    single = TensorBatches(x, y, bs, shuffle=True, seed=3)
    assert (
        torch.cat([b for _, b in single]).tolist()
        == torch.randperm(n, generator=torch.Generator().manual_seed(3)).tolist()
    )


def test_eval_batches_cover_each_row_once(monkeypatch):
    n, world = 103, 2
    x, y = torch.zeros(n, 1), torch.arange(n)
    shards = _per_rank(monkeypatch, TensorBatches(x, y, 10), world)
    assert sorted(torch.cat([torch.cat(s) for s in shards]).tolist()) == list(range(n))  # exact metrics


@pytest.mark.slow
def test_ddp_cpu_run_end_to_end(store, tmp_path):
    """2 processes: one FINISHED run, metrics from rank 0 synchronised over both shards, one model version."""
    out = run_cli(
        "trainer=ddp_cpu",
        "debug=quick",
        "trainer.max_epochs=2",
        f"tracking.uri='{store}'",
        "tracking.experiment=ddp",
        "++registry.thresholds.test_r2=-100",
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Starting with 2 processes" in out.stdout + out.stderr
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert run.info.status == "FINISHED"
    for name in ("test_rmse", "test_r2", "test_loss", "val_rmse", "train_loss"):
        assert name in run.data.metrics, name
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_rmse")] == [0, 1]  # once per epoch
    assert run.data.params["trainer.strategy"] == "ddp" and run.data.params["trainer.devices"] == "2"
    (version,) = client.search_model_versions("name='ddp-diabetes'")
    assert version.run_id == run.info.run_id
    assert out.stdout.count("registry gate") == 1
    (day,) = (tmp_path / "outputs").iterdir()
    assert len(list(day.iterdir())) == 1  # the ranks > 0 wrote into rank 0's Hydra output directory

    # Each rank evaluated half of the test split; the logged metric is the whole split's: the packaged model
    # (the best checkpoint) reproduces it from the raw test rows.
    import mlflow

    from mlproj.data.sources import SklearnDataset

    test = SklearnDataset(name="diabetes").prepare().splits["test"]
    mlflow.set_tracking_uri(store)  # models:/<id> resolves through the store that logged it
    predicted = mlflow.pyfunc.load_model(run.data.tags["mlproj.model_uri"]).predict(test.raw)
    predicted = np.asarray(predicted["prediction"] if isinstance(predicted, pd.DataFrame) else predicted).ravel()
    rmse = float(np.sqrt(np.mean((predicted - test.raw_target.to_numpy()) ** 2)))
    assert rmse == pytest.approx(run.data.metrics["test_rmse"], rel=1e-4)


@pytest.mark.slow
def test_torchrun_launches_every_rank_and_rank_0_alone_tracks(store, tmp_path):
    """torchrun starts both processes itself (RANK set): one run, one version, one output directory."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "mlproj"]
    command += ["trainer=ddp_cpu", "debug=quick", f"hydra.run.dir={tmp_path / 'out'}", f"tracking.uri='{store}'"]
    command += ["++registry.thresholds.test_r2=-100"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    assert run.info.status == "FINISHED" and "test_rmse" in run.data.metrics
    assert len(client.search_model_versions("name='mlproj-diabetes'")) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["mlruns", "out"]
