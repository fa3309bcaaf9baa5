"""Feature embeddings for tabular networks: one vector (token) per input column.

mlproj's tables reach a network as the fitted preprocessing's output: standardised numeric columns, then one
one-hot block per categorical column (`Preprocessor.cardinalities`, passed to a network as `categories`). A
categorical block becomes its slot's row of an embedding table (the one-hot's index: exact, since each block has
exactly one 1, "other" and "missing" included). A numeric column becomes `x * w + b` (linear), or the periodic
embedding of Gorishniy et al. 2022 ("On Embeddings for Numerical Features in Tabular Deep Learning", PLR:
cos/sin of trained frequencies, a per-column linear layer, ReLU), or its piecewise-linear encoding over the
training split's quantile bins (mlproj.data.bins; the edges come in as `bins`, part of the packaged recipe),
then a per-column linear layer and ReLU. The packaged model needs no state beyond its weights, its recipe and
the preprocessing's JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

NumericEmbedding = Literal["none", "linear", "periodic", "piecewise"]


def split_sizes(in_features: int, categories: Sequence[int]) -> int:
    """How many numeric columns precede the categorical blocks."""
    numeric = in_features - sum(categories)
    if numeric < 0 or any(c < 1 for c in categories):
        raise ValueError(f"categories={list(categories)} do not fit in_features={in_features}")
    return numeric


class PeriodicEmbedding(nn.Module):
    """PLR: v = 2*pi*c_j*x_j with `frequencies` trained c_j ~ N(0, sigma); [cos v, sin v] -> Linear_j -> ReLU."""

    def __init__(self, columns: int, dim: int, frequencies: int = 16, sigma: float = 1.0) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(columns, frequencies) * sigma)
        bound = 1 / math.sqrt(2 * frequencies)
        self.weight = nn.Parameter(torch.empty(columns, 2 * frequencies, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(columns, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, columns] -> [B, columns, dim]
        v = 2 * math.pi * self.frequencies * x.unsqueeze(-1)
        features = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
        return torch.relu(torch.einsum("bcf,cfd->bcd", features, self.weight) + self.bias)


class PiecewiseLinearEmbedding(nn.Module):
    """PLE: bin t of x's column -> [1]*(t) + [(x - left_t) / width_t] + [0]*(...); the first and last bins extend
    beyond the edges seen in training. Then a per-column Linear(bins, dim) and ReLU."""

    def __init__(self, edges: Sequence[Sequence[float]], dim: int) -> None:
        super().__init__()
        most = max(len(e) - 1 for e in edges)
        left, width, mask = torch.zeros(len(edges), most), torch.ones(len(edges), most), torch.zeros(len(edges), most)
        for j, column in enumerate(edges):
            e = torch.tensor(column, dtype=torch.float32)
            if len(e) < 2 or not bool((e[1:] > e[:-1]).all()):
                raise ValueError(f"bins[{j}]={list(column)} must be increasing edges, at least two")
            n = len(e) - 1
            left[j, :n], width[j, :n], mask[j, :n] = e[:-1], e[1:] - e[:-1], 1.0
        # Rebuilt from `bins` (the recipe), not stored with the weights.
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("width", width, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("last", mask.sum(1).long() - 1, persistent=False)
        bound = 1 / math.sqrt(most)
        self.weight = nn.Parameter(torch.empty(len(edges), most, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(len(edges), dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, columns] -> [B, columns, dim]
        return torch.relu(torch.einsum("bct,ctd->bcd", self.encode(x), self.weight) + self.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # [B, columns] -> [B, columns, bins]
        ratio = (x.unsqueeze(-1) - self.left) / self.width
        bins = torch.arange(ratio.shape[-1], device=x.device)
        first, last = bins == 0, bins == self.last.unsqueeze(-1)  # open-ended: below the first, above the last
        upper = torch.where(last, torch.full_like(ratio, torch.inf), torch.ones_like(ratio))
        lower = torch.where(first, torch.full_like(ratio, -torch.inf), torch.zeros_like(ratio))
        return torch.maximum(torch.minimum(ratio, upper), lower) * self.mask


class LinearEmbedding(nn.Module):
    """x_j -> x_j * w_j + b_j: FT-Transformer's numeric tokens."""

    def __init__(self, columns: int, dim: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(columns, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(columns, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias


class CategoryEmbedding(nn.Module):
    """Each one-hot block -> its slot's embedding (one table for all columns, offset per column) + a column bias."""

    def __init__(self, categories: Sequence[int], dim: int) -> None:
        super().__init__()
        self.sizes = [int(c) for c in categories]
        self.table = nn.Embedding(sum(self.sizes), dim)
        nn.init.uniform_(self.table.weight, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(len(self.sizes), dim))
        starts = torch.tensor([0, *self.sizes[:-1]]).cumsum(0)
        self.register_buffer("offsets", starts, persistent=False)  # rebuilt from `categories`, not stored

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:  # [B, sum(sizes)] -> [B, columns, dim]
        index = torch.stack([b.argmax(dim=1) for b in onehot.split(self.sizes, dim=1)], dim=1)
        return self.table(index + self.offsets) + self.bias


class FeatureTokens(nn.Module):
    """[B, in_features] -> [B, columns, dim]: one token per numeric column and per categorical column.
    numeric="none" keeps a numeric column as itself (a 1-wide "token"): only for flattening networks."""

    def __init__(
        self,
        in_features: int,
        categories: Sequence[int],
        dim: int,
        numeric: NumericEmbedding = "linear",
        frequencies: int = 16,
        sigma: float = 1.0,
        bins: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__()
        self.numeric_columns = split_sizes(in_features, categories)
        self.flat = numeric == "none"
        self.numeric: nn.Module | None = None
        if self.numeric_columns and numeric == "piecewise":
            if len(bins) != self.numeric_columns:
                raise ValueError(f"numeric_embedding=piecewise needs bins for {self.numeric_columns} numeric columns")
            self.numeric = PiecewiseLinearEmbedding(bins, dim)
        elif self.numeric_columns and numeric == "periodic":
            self.numeric = PeriodicEmbedding(self.numeric_columns, dim, frequencies, sigma)
        elif self.numeric_columns and numeric == "linear":
            self.numeric = LinearEmbedding(self.numeric_columns, dim)
        self.categorical = CategoryEmbedding(categories, dim) if categories else None
        per_numeric = 1 if self.flat else dim
        self.out_features = self.numeric_columns * per_numeric + len(categories) * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, columns, dim] (numeric="none": the flat features [B, out_features] instead)."""
        numeric, onehot = x[:, : self.numeric_columns], x[:, self.numeric_columns :]
        parts = []
        if self.numeric_columns:
            parts.append(numeric.unsqueeze(-1) if self.numeric is None else self.numeric(numeric))
        if self.categorical is not None:
            parts.append(self.categorical(onehot))
        if self.flat:
            return torch.cat([p.flatten(1) for p in parts], dim=1)
        return torch.cat(parts, dim=1)

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).flatten(1)
