"""On-device batching of in-memory tensors.

The whole split lives in two tensors; a batch is an index slice of a per-epoch permutation. This replaces
`DataLoader(TensorDataset)`, whose per-sample indexing and collate dominate the step time of small tabular
models, while staying a plain sized iterable that Lightning accepts as a dataloader.

With `chunk=K` (training), an item is a list of up to K such minibatches: the training step makes one
optimizer step per minibatch, so Lightning's per-item loop overhead is paid once per K steps. The
minibatches, and their order, are the same for every K.

Under DDP each rank iterates only its shard (Lightning injects a DistributedSampler into DataLoaders only).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorBatches:
    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        chunk: int = 1,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.epoch = 0
        self.seed = seed
        self.chunk = chunk  # 1: items are (x, y) minibatches; K > 1: lists of up to K of them

    def set_epoch(self, epoch: int) -> None:
        """The permutation of an epoch depends on (seed, epoch) only, so a resumed run shuffles epoch 7 as an
        uninterrupted one does (the task calls this at each epoch's start, as Lightning does for samplers)."""
        self.epoch = epoch

    def num_batches(self) -> int:
        """Minibatches per epoch on this rank (optimizer steps, for training)."""
        return (self._rows() + self.batch_size - 1) // self.batch_size

    def __len__(self) -> int:
        return (self.num_batches() + self.chunk - 1) // self.chunk

    def __iter__(self) -> Iterator[Batch | list[Batch]]:
        if self.chunk == 1:
            yield from self._slices(self.batch_size)
            return
        # One gather per chunk, split into views: fewer kernels per step than one gather per minibatch.
        for x, y in self._slices(self.batch_size * self.chunk):
            yield list(zip(x.split(self.batch_size), y.split(self.batch_size), strict=True))

    def _slices(self, rows: int) -> Iterator[Batch]:
        n = len(self.x)
        rank, world = rank_and_world()
        if self.shuffle:
            # A fresh permutation per epoch, reproducible from (seed, epoch): the same on every rank.
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=gen).to(self.x.device)
            self.epoch += 1
            if world > 1:
                order = shard(order, rank, world)
            for start in range(0, len(order), rows):
                idx = order[start : start + rows]
                # index_select, not x[idx]: advanced indexing takes 3.5-5x longer on CPU for the same gather
                # (per 200k-row epoch: 41 vs 11 ms in 256-row slices, 36 vs 7 ms in 8,192-row chunks;
                # benchmarks/2026-11-30-cpu-rounds-quiet.md)
                yield self.x.index_select(0, idx), self.y.index_select(0, idx)
        else:
            # Evaluation: a contiguous block per rank, every row exactly once (exact metrics). Block sizes
            # differ by at most one row; evaluation has no per-step collective, so no rank waits on another.
            lo, hi = rank * n // world, (rank + 1) * n // world
            for start in range(lo, hi, rows):
                end = min(start + rows, hi)
                yield self.x[start:end], self.y[start:end]

    def _rows(self) -> int:
        n = len(self.x)
        rank, world = rank_and_world()
        return -(-n // world) if self.shuffle else (rank + 1) * n // world - rank * n // world

    def to(self, device: torch.device | str) -> TensorBatches:
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self


def split_batches(
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int, shuffle: bool, seed: int, chunk: int
) -> dict[str, TensorBatches]:
    """Batches per split: "train" shuffled (when `shuffle`) and in chunks of `chunk` minibatches for the built-in
    task's training step; the others in order, one minibatch at a time."""
    return {
        name: TensorBatches(
            x, y, batch_size, shuffle=shuffle and name == "train", seed=seed, chunk=chunk if name == "train" else 1
        )
        for name, (x, y) in splits.items()
    }


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of a permutation, as DistributedSampler does it: padded by wrapping around to a
    multiple of `world`, then every world-th index. Equal lengths on every rank, so no rank waits at the
    gradient all-reduce for a batch another rank does not have."""
    total = -(-len(order) // world) * world
    if total > len(order):
        order = torch.cat([order, order.repeat(-(-total // len(order)))[: total - len(order)]])
    return order[rank:total:world]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the running process group; (0, 1) outside DDP."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
