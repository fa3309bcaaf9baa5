"""On-device batching of in-memory tensors.

The whole split lives in two tensors; a batch is an index slice of a per-epoch permutation. This replaces
`DataLoader(TensorDataset)`, whose per-sample indexing and collate dominate the step time of small tabular
models, while staying a plain sized iterable that Lightning accepts as a dataloader.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TensorBatches:
    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.epoch = 0
        self.seed = seed

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
