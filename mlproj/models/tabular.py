"""Networks for tables after Gorishniy et al. 2021 ("Revisiting Deep Learning Models for Tabular Data"): a ResNet
of MLP blocks and the FT-Transformer. Both take mlproj's preprocessed rows (`in_features`, with the categorical
one-hot blocks' sizes as `categories`, which mlproj passes) and embed categorical columns instead of reading
their one-hot; numeric columns optionally through periodic or piecewise-linear embeddings (the latter over the
training split's quantile `bins`, which mlproj passes too; mlproj.models.embeddings)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mlproj.models.embeddings import FeatureTokens, NumericEmbedding


def _check_dropout(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}={value} must be in [0, 1)")


class _BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a one-row training batch (an epoch's last, rows % batch_size == 1) with its
    running statistics instead of failing: batch statistics of one row do not exist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and len(x) == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False)
        return super().forward(x)


class ResNetMLP(nn.Module):
    """Embeddings -> Linear(width) -> `blocks` x [BatchNorm, Linear(width*hidden_factor), ReLU, Dropout,
    Linear(width), Dropout, + skip] -> BatchNorm, ReLU, Linear(out_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        categories: Sequence[int] = (),
        width: int = 128,
        blocks: int = 2,
        hidden_factor: float = 2.0,
        dropout: float = 0.1,
        embed_dim: int = 8,
        numeric_embedding: NumericEmbedding = "none",
        frequencies: int = 16,
        sigma: float = 1.0,
        bins: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__()
        _check_dropout(dropout=dropout)
        if width < 1 or blocks < 0 or embed_dim < 1:
            raise ValueError(f"width={width}, blocks={blocks}, embed_dim={embed_dim} must be positive")
        self.tokens = FeatureTokens(in_features, categories, embed_dim, numeric_embedding, frequencies, sigma, bins)
        self.first = nn.Linear(self.tokens.out_features, width)
        hidden = max(1, int(width * hidden_factor))
        self.blocks = nn.ModuleList(
            nn.Sequential(
                _BatchNorm(width),
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, width),
                nn.Dropout(dropout),
            )
            for _ in range(blocks)
        )
        self.head = nn.Sequential(_BatchNorm(width), nn.ReLU(), nn.Linear(width, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(self.tokens.flatten(x.flatten(1)))
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class FTTransformer(nn.Module):
    """Feature tokens + a [CLS] token -> `blocks` pre-norm Transformer layers -> LayerNorm, ReLU, Linear on [CLS]."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        categories: Sequence[int] = (),
        d_token: int = 32,
        blocks: int = 2,
        heads: int = 4,
        ff_factor: float = 4 / 3,
        attention_dropout: float = 0.1,
        ff_dropout: float = 0.1,
        numeric_embedding: NumericEmbedding = "linear",
        frequencies: int = 16,
        sigma: float = 1.0,
        bins: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__()
        _check_dropout(attention_dropout=attention_dropout, ff_dropout=ff_dropout)
        if numeric_embedding == "none":
            raise ValueError("numeric_embedding=none: a transformer needs tokens; use linear or periodic")
        if d_token < 1 or blocks < 1 or heads < 1 or d_token % heads:
            raise ValueError(f"d_token={d_token} must be a positive multiple of heads={heads}; blocks >= 1")
        self.tokens = FeatureTokens(in_features, categories, d_token, numeric_embedding, frequencies, sigma, bins)
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-(d_token**-0.5), d_token**-0.5))
        layer = nn.TransformerEncoderLayer(
            d_token,
            heads,
            dim_feedforward=max(1, int(d_token * ff_factor)),
            dropout=ff_dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm, as in the paper: stable without warm-up
        )
        layer.self_attn.dropout = attention_dropout
        self.encoder = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x.flatten(1))
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])
