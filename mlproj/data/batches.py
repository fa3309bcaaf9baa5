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
        batches = self._batches()
        if self.chunk == 1:
            yield from batches
            return
        items: list[Batch] = []
        for batch in batches:
            items.append(batch)
            if len(items) == self.chunk:
                yield items
                items = []
        if items:
            yield items

    def _batches(self) -> Iterator[Batch]:
        n, bs = len(self.x), self.batch_size
        if self.shuffle:
            # A fresh permutation per epoch, reproducible from (seed, epoch).
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=gen).to(self.x.device)
            self.epoch += 1
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, bs):
                yield self.x[start : start + bs], self.y[start : start + bs]

    def to(self, device: torch.device | str) -> TensorBatches:
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self
