"""Parquet larger than memory: a run that streams row groups (never the whole file) through a DataLoader,
and the sharding of that stream over DDP ranks and DataLoader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient

from mlproj.config import families
from mlproj.data import streaming
from mlproj.train import run
from tests.conftest import QUICK, houses_frame

ROWS, GROUP = 50_000, 5_000


@pytest.fixture(scope="module")
def houses_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parquet") / "houses.parquet"
    houses_frame(ROWS).to_parquet(path, row_group_size=GROUP)
    assert pq.ParquetFile(path).metadata.num_row_groups == ROWS // GROUP
    return path


def stream_overrides(path: Path, *extra: str) -> list[str]:
    return ["data=parquet_stream", f"data.path='{path}'", "data.target=price", "data.exclude=[segment]", *extra]


def test_streaming_run_never_reads_the_whole_file(make_cfg, store, tmp_path, houses_parquet, monkeypatch):
    reads: list[tuple[tuple[int, ...] | None, int]] = []
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self, batch_size=65536, row_groups=None, **kwargs):
        reads.append((tuple(row_groups) if row_groups is not None else None, batch_size))
        return iter_batches(self, batch_size=batch_size, row_groups=row_groups, **kwargs)

    def whole_file(*args, **kwargs):
        raise AssertionError("the whole Parquet file was read")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", whole_file)
    monkeypatch.setattr(pq, "read_table", whole_file)
    monkeypatch.setattr(pd, "read_parquet", whole_file)

    overrides = stream_overrides(houses_parquet, "data.sample_rows=2000", "data.batch_size=512")
    cfg = make_cfg(*QUICK, *overrides, f"tracking.uri='{store}'", "trainer.limit_train_batches=1.0")
    result = run(cfg, overrides, tmp_path / "out")

    run_info = MlflowClient(store).get_run(result.run_id)
    assert run_info.info.status == "FINISHED"
    for name in ("test_rmse", "test_r2", "val_rmse", "train_loss"):
        assert name in run_info.data.metrics, name
    assert result.metrics["test_r2"] > 0.5  # it learned from the streamed rows
    params = run_info.data.params
    assert params["data.sample_rows"] == "2000" and params["data._target_"] == "mlproj.data.streaming.StreamingParquet"
    assert not {"data.rows", "data.features", "data.noise"} & set(params)  # the synthetic generator's keys
    sample, *streamed = reads
    assert sample == (None, 2000)  # the sample: record batches of sample_rows from the start, then stopped
    assert all(groups is not None and len(groups) == 1 for groups, _ in streamed)  # one row group per read
    assert max(size for _, size in streamed) <= streaming.READ_ROWS
    # 2 epochs of train + val, then test: each a pass over the 10 row groups
    assert len(streamed) == 5 * (ROWS // GROUP)
    model_input = mlflow_input_columns(result.model_uri)
    assert "segment" not in model_input and "area" in model_input


def mlflow_input_columns(model_uri: str) -> list[str]:
    import mlflow

    return mlflow.models.get_model_info(model_uri).signature.inputs.input_names()


def split_rows(path: Path, split: str, seed: int = 42) -> int:
    codes = streaming.split_codes(np.arange(ROWS), seed, 0.15, 0.15)
    return int((codes == streaming.SPLIT_CODES[split]).sum())


@pytest.fixture
def stream_data(make_cfg, houses_parquet):
    return families.build(
        make_cfg(*stream_overrides(houses_parquet, "data.batch_size=256")).data, "data", "data"
    ).prepare()


def test_splits_are_disjoint_and_every_row_is_read_once(stream_data, houses_parquet):
    counts = {}
    prices = houses_frame(ROWS)["price"]  # the file's targets, in file order
    codes = streaming.split_codes(np.arange(ROWS), 42, 0.15, 0.15)
    for split in ("train", "val", "test"):
        dataset = streaming.ParquetBatches(stream_data.plan, split, 256, shuffle=split == "train", seed=1)
        batches = [y for _, y in dataset]
        sizes = [len(y) for y in batches]
        assert max(sizes) == 256 and all(s == 256 for s in sizes[:-1])
        counts[split] = sum(sizes)
        assert counts[split] == split_rows(houses_parquet, split)  # houses has a target on every row
        # not only as many rows: the split's own rows, each once (its targets, as a multiset)
        mine = stream_data.plan.pre.encode_target(prices[codes == streaming.SPLIT_CODES[split]])
        assert np.array_equal(np.sort(torch.cat(batches).numpy()), np.sort(np.asarray(mine))), split
    assert sum(counts.values()) == ROWS


def test_ddp_ranks_stream_equal_batches_of_their_own_row_groups(stream_data, monkeypatch):
    per_rank = {}
    for rank in range(3):
        monkeypatch.setattr(streaming, "rank_and_world", lambda rank=rank: (rank, 3))
        train = streaming.ParquetBatches(stream_data.plan, "train", 256, shuffle=True, seed=1)
        per_rank[rank] = (sum(1 for _ in train), train.reads)
        val = streaming.ParquetBatches(stream_data.plan, "val", 256)
        per_rank[rank] += (sum(len(y) for _, y in val),)
    assert len({batches for batches, _, _ in per_rank.values()}) == 1  # no rank waits at the all-reduce
    groups = [set(reads) for _, reads, _ in per_rank.values()]
    own = [{0, 3, 6, 9}, {1, 4, 7}, {2, 5, 8}]
    assert all(g <= mine for g, mine in zip(groups, own, strict=True))  # each rank reads only its own row groups
    # rank 0 holds 4 row groups: it stops at the batch count of the smallest share (3 row groups)
    assert len(groups[0]) == 3 and groups[1:] == own[1:]
    assert sum(rows for _, _, rows in per_rank.values()) == split_rows(Path(), "val")  # each val row once


@pytest.mark.slow
def test_dataloader_workers_split_the_row_groups(stream_data, make_cfg, houses_parquet):
    node = make_cfg(*stream_overrides(houses_parquet, "data.batch_size=256", "data.num_workers=2")).data
    cfg = families.build(node, "data", "data")
    batches = list(streaming.loader(stream_data.plan, "test", cfg, seed=0))
    assert sum(len(y) for _, y in batches) == split_rows(houses_parquet, "test")
    assert all(isinstance(x, torch.Tensor) and x.dtype == torch.float32 for x, _ in batches)


@pytest.mark.slow
def test_streaming_under_ddp_end_to_end(store, tmp_path, houses_parquet):
    """2 CPU processes, each streaming its own row groups: one FINISHED run with test metrics."""
    from tests.conftest import run_cli

    overrides = stream_overrides(houses_parquet, "data.batch_size=512", "data.sample_rows=2000")
    out = run_cli("trainer=ddp_cpu", "debug=quick", *overrides, f"tracking.uri='{store}'", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("mlproj-houses").experiment_id])
    assert run.info.status == "FINISHED" and "test_rmse" in run.data.metrics
