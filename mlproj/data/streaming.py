"""Parquet tables larger than memory: a bounded sample to fit on, then batches streamed per row group.

`data=parquet_stream` (StreamingParquet) never reads the whole file. The first `data.sample_rows`
rows fix the task, fit the preprocessing (on their training rows) and give the packaged model its signature
and the test plots their rows. Training, validation and test then stream through a DataLoader over an
IterableDataset that reads one row group at a time with `ParquetFile.iter_batches` and applies the fitted
preprocessing per record batch.

A row's split comes from a hash of its position in the file and `data.split_seed`: reproducible, the same in
every process, and computable from the Parquet metadata alone (no stratification, unlike in-memory tables).
Row groups are sharded over DDP ranks and DataLoader workers (rank-major). Training under DDP yields the same
number of batches on every rank (the smallest share, from the metadata; a rank whose share came out short
after dropping rows without a target wraps around), so no rank waits at the all-reduce for a batch another
rank lacks. Validation and test read every row once (they have no per-step collective).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mlproj.data.batches import rank_and_world
from mlproj.data.prepare import SPLITS, PreparedData, Split, resolve_task
from mlproj.data.preprocess import Preprocessor
from mlproj.data.sources import TableFile
from mlproj.data.table import Table, is_parquet, select_columns
from mlproj.errors import ConfigError, InputError
from mlproj.metrics import CLASSIFICATION

log = logging.getLogger(__name__)

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
READ_ROWS = 65_536  # rows per record batch read: what one read holds in memory, with the row group's pages


def split_codes(index: np.ndarray, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """0 train, 1 val, 2 test for each row position: a splitmix64 hash of (position, seed) as a uniform."""
    z = index.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)  # uint64 arrays wrap around
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    unit = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return np.where(unit < test_fraction, 2, np.where(unit < test_fraction + val_fraction, 1, 0))


@dataclass
class ParquetPlan:
    """What every process needs to stream one split: the file, its row groups, the fitted preprocessing."""

    path: str
    target: str
    pre: Preprocessor
    row_group_rows: list[int]
    val_fraction: float
    test_fraction: float
    split_seed: int

    @property
    def columns(self) -> list[str]:
        return [*self.pre.input_columns, self.target]

    def offsets(self) -> list[int]:
        return [0, *np.cumsum(self.row_group_rows).tolist()]

    def rows_in(self, group: int, split: str) -> int:
        """Rows of `split` in a row group, from the metadata alone."""
        start = self.offsets()[group]
        index = np.arange(start, start + self.row_group_rows[group])
        codes = split_codes(index, self.split_seed, self.val_fraction, self.test_fraction)
        return int((codes == SPLIT_CODES[split]).sum())


def open_file(path: str) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(str(Path(path).expanduser()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data.path={path!r} could not be read as Parquet: {exc}") from exc


def read_sample(cfg: StreamingParquet) -> tuple[Table, np.ndarray]:
    """The first `data.sample_rows` rows (those with a target) as a raw Table, and each row's split code."""
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.path={cfg.path!r}: no such file")
    pf = open_file(str(path))
    names = pf.schema_arrow.names
    if cfg.target not in names:
        raise ConfigError(f"data.target={cfg.target!r} is not a column of {path.name}; columns: {', '.join(names)}")
    parts, rows = [], 0
    for batch in pf.iter_batches(batch_size=min(READ_ROWS, cfg.sample_rows)):
        parts.append(batch.to_pandas())
        rows += batch.num_rows
        if rows >= cfg.sample_rows:
            break
    if not parts:
        raise ConfigError(f"data.path={cfg.path!r} holds no rows")
    frame = pd.concat(parts, ignore_index=True).head(cfg.sample_rows)
    codes = split_codes(np.arange(len(frame)), cfg.split_seed, cfg.val_fraction, cfg.test_fraction)
    target = frame.pop(cfg.target)
    keep = target.notna().to_numpy()
    if not keep.any():
        raise ConfigError(f"data.target={cfg.target!r} has no values in the first {len(frame)} rows of {path.name}")
    frame, target, codes = frame[keep].reset_index(drop=True), target[keep].reset_index(drop=True), codes[keep]
    name = path.name.split(".")[0]
    table = select_columns(Table(frame, target, name, str(path.resolve())), cfg)
    return table, codes


def prepare_stream(
    table: Table, codes: np.ndarray, task: str, cfg: StreamingParquet
) -> tuple[Preprocessor, ParquetPlan]:
    """Fit the preprocessing on the sample's training rows; the plan to stream every split."""
    train = codes == SPLIT_CODES["train"]
    if train.sum() < 2:
        raise ConfigError(f"data.sample_rows={cfg.sample_rows} leaves fewer than 2 training rows to fit on")
    if task == CLASSIFICATION and table.target[train].nunique() < 2:
        raise ConfigError(f"data.target={table.target.name!r} has a single class in the sample; raise data.sample_rows")
    try:
        pre = Preprocessor.fit(
            table.features[train],
            table.target[train],
            task,
            cfg.max_categories,
            cfg.id_unique_ratio,
            cfg.drop_constant,
            cfg.scale,
        )
    except InputError as exc:
        raise ConfigError(f"data: {exc}") from exc
    pf = open_file(cfg.path)
    groups = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    plan = ParquetPlan(
        str(Path(cfg.path).expanduser().resolve()),
        str(cfg.target),
        pre,
        groups,
        cfg.val_fraction,
        cfg.test_fraction,
        cfg.split_seed,
    )
    return pre, plan


class ParquetBatches(IterableDataset):
    """Preprocessed (x, y) batches of one split, streamed from the row groups of this rank and worker."""

    def __init__(self, plan: ParquetPlan, split: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> None:
        self.plan, self.split, self.batch_size = plan, split, batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.reads: list[int] = []  # row groups read, in order (this process): what tests check
        self.dropped = 0  # rows skipped: no target, or a class the sample did not contain
        self._quotas: dict[int, int] = {}

    def _slot(self) -> tuple[int, int]:
        rank, world = rank_and_world()
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return rank * workers + worker, world * workers

    def groups(self) -> list[int]:
        slot, slots = self._slot()
        mine = list(range(slot, len(self.plan.row_group_rows), slots))
        if not mine:
            raise ConfigError(
                f"{self.plan.path} has {len(self.plan.row_group_rows)} row group(s), fewer than the {slots} "
                "DDP ranks x DataLoader workers streaming it; write it with more row groups or use fewer workers"
            )
        return mine

    def quota(self) -> int | None:
        """Training under DDP: batches every rank yields (None: one full pass)."""
        _, world = rank_and_world()
        if self.split != "train" or world == 1:
            return None
        _, slots = self._slot()
        if slots not in self._quotas:  # hashes every row position once: cached for the next epochs
            count = len(self.plan.row_group_rows)
            shares = [sum(self.plan.rows_in(g, "train") for g in range(s, count, slots)) for s in range(slots)]
            self._quotas[slots] = max(1, min(shares) // self.batch_size)
        return self._quotas[slots]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        groups, quota = self.groups(), self.quota()
        info = get_worker_info()
        # Row-group order per epoch: reproducible from the seed (DataLoader workers: from their own seed).
        gen = np.random.default_rng(info.seed if info else self.seed + self.epoch)
        self.epoch += 1
        if self.shuffle:
            gen.shuffle(groups)
        yielded = 0
        while True:
            for x, y in self._batches(groups, gen, partial=quota is None):
                yield x, y
                yielded += 1
                if quota is not None and yielded >= quota:
                    return
            if quota is None or yielded == 0:
                return  # one pass (quota: nothing to wrap around over would loop forever)

    def _batches(
        self, groups: list[int], gen: np.random.Generator, partial: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        held = 0
        for x, y in self._chunks(groups, gen):
            xs.append(x)
            ys.append(y)
            held += len(y)
            while held >= self.batch_size:
                x_all, y_all = np.concatenate(xs), np.concatenate(ys)
                yield torch.from_numpy(x_all[: self.batch_size]), torch.from_numpy(y_all[: self.batch_size])
                xs, ys = [x_all[self.batch_size :]], [y_all[self.batch_size :]]
                held -= self.batch_size
        if held and partial:  # the last, smaller batch; not when batches are counted (DDP training)
            yield torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def _chunks(self, groups: list[int], gen: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        plan, code = self.plan, SPLIT_CODES[self.split]
        pf = open_file(plan.path)
        offsets = plan.offsets()
        known = {label: i for i, label in enumerate(plan.pre.labels)}
        for group in groups:
            self.reads.append(group)
            start = offsets[group]
            for batch in pf.iter_batches(batch_size=READ_ROWS, row_groups=[group], columns=plan.columns):
                index = np.arange(start, start + batch.num_rows)
                start += batch.num_rows
                mine = split_codes(index, plan.split_seed, plan.val_fraction, plan.test_fraction) == code
                if not mine.any():
                    continue
                frame = batch.to_pandas()[mine]
                target = frame.pop(plan.target)
                keep = target.notna()
                if plan.pre.task == CLASSIFICATION:
                    keep &= target.map(known.__contains__).astype(bool)
                self.dropped += int((~keep).sum())
                frame, target = frame[keep.to_numpy()], target[keep.to_numpy()]
                if frame.empty:
                    continue
                if self.shuffle:
                    order = gen.permutation(len(frame))
                    frame, target = frame.iloc[order], target.iloc[order]
                yield plan.pre.transform(frame), plan.pre.encode_target(target)


def loader(plan: ParquetPlan, split: str, cfg: StreamingParquet, seed: int) -> DataLoader:
    """A DataLoader over the split's stream; it batches itself, hence batch_size=None."""
    dataset = ParquetBatches(plan, split, cfg.batch_size, shuffle=split == "train" and cfg.shuffle, seed=seed)
    return DataLoader(dataset, batch_size=None, num_workers=cfg.num_workers, persistent_workers=False)


def prepare_streaming(cfg: Any) -> PreparedData:
    """Streaming Parquet: the task and preprocessing from a bounded sample; the rest streams at training."""
    table, codes = read_sample(cfg)
    task = resolve_task(table, cfg)
    pre, plan = prepare_stream(table, codes, task, cfg)
    splits = {}
    for name in SPLITS:
        rows = codes == SPLIT_CODES[name]
        raw = table.features[rows].reset_index(drop=True)
        target = table.target[rows].reset_index(drop=True)
        if task == CLASSIFICATION:  # sample rows of a class the training rows lack: not for the plots
            seen = target.map(set(pre.labels).__contains__).astype(bool).to_numpy()
            raw, target = raw[seen].reset_index(drop=True), target[seen].reset_index(drop=True)
        splits[name] = Split(raw, target, pre.transform(raw), pre.encode_target(target))
    return PreparedData(table, task, pre, splits, plan)


@dataclass(kw_only=True, eq=False)
class StreamingParquet(TableFile):
    """A Parquet file larger than memory: a bounded sample fits the preprocessing, row groups stream through a
    DataLoader (mlproj/data/streaming.py)."""

    streaming = True
    batch_size: int = 256
    sample_rows: int = 10000
    num_workers: int = 0  # DataLoader worker processes reading the stream (row groups are split between them)

    def check_file(self) -> None:  # this source's own keys first, then the file
        if not is_parquet(self.path):
            raise ConfigError(f"data.path={self.path!r}: data=parquet_stream reads a .parquet file")
        if self.sample_rows < 20:
            raise ConfigError(f"data.sample_rows={self.sample_rows} must be >= 20")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers} must be >= 0")
        super().check_file()

    def prepare(self) -> PreparedData:
        return prepare_streaming(self)

    def loaders(self, prepared: PreparedData, seed: int, steps_per_chunk: int) -> dict[str, Any]:
        return {name: loader(prepared.plan, name, self, seed) for name in prepared.splits}
