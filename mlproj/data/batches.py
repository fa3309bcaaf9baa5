"""On-device batching of in-memory tensors.

The whole split lives in two tensors; a batch is an index slice of a per-epoch permutation. This replaces
`DataLoader(TensorDataset)`, whose per-sample indexing and collate dominate the step time of small tabular
models, while staying a plain sized iterable that Lightning accepts as a dataloader.

With `chunk=K` (training), an item is a list of up to K such minibatches: the training step makes one
optimizer step per minibatch, so Lightning's per-item loop overhead is paid once per K steps. The
minibatches, and their order, are the same for every K.
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

    def num_batches(self) -> int:
        """Minibatches per epoch (optimizer steps, for training)."""
        return (len(self.x) + self.batch_size - 1) // self.batch_size

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
        if self.shuffle:
            # A fresh permutation per epoch, reproducible from (seed, epoch).
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=gen).to(self.x.device)
            self.epoch += 1
            for start in range(0, n, rows):
                idx = order[start : start + rows]
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, rows):
                yield self.x[start : start + rows], self.y[start : start + rows]

    def to(self, device: torch.device | str) -> TensorBatches:
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self
