"""Networks over token ids (mlproj.data.text): a row of `length` int64 ids, left-aligned, 0 for padding.

`in_features` is the vocabulary's size (ids 0..in_features-1), as the data gives it; `out_features` as for any
network of the built-in task. `inputs = "token_ids"` tells mlproj.plan these take what a text source gives.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlproj.data.text import PAD, TOKEN_IDS

_MIX = 0x9E3779B1  # odd multiplier that spreads consecutive n-gram codes over the hash buckets


class EmbeddingBag(nn.Module):
    """A fastText-style baseline: the mean of the embeddings of a text's words and of its hashed n-grams
    (2..`ngrams` consecutive words, `buckets` shared slots), then a linear layer. Fast: one EmbeddingBag."""

    inputs = TOKEN_IDS

    def __init__(
        self,
        in_features: int,
        out_features: int,
        embed_dim: int = 64,
        ngrams: int = 2,
        buckets: int = 16384,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if ngrams < 1 or buckets < 1 or embed_dim < 1:
            raise ValueError("ngrams, buckets and embed_dim must be >= 1")
        self.vocab, self.ngrams, self.buckets = in_features, ngrams, buckets
        rows = in_features + (buckets if ngrams > 1 else 0)
        # mode="mean" leaves padding (id 0) out of the mean; an empty text is a zero vector.
        self.embed = nn.EmbeddingBag(rows, embed_dim, mode="mean", padding_idx=PAD)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # small: a mean of many starts near zero, as fastText does
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(torch.cat([x, *self._ngram_ids(x)], dim=1))))

    def _ngram_ids(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Ids of the hashed n-grams, after the vocabulary's rows; 0 (padding) where an n-gram runs into padding."""
        found = []
        for n in range(2, min(self.ngrams, x.shape[1]) + 1):
            width = x.shape[1] - n + 1
            parts = [x[:, k : k + width] for k in range(n)]
            code = parts[0]
            for part in parts[1:]:
                code = code * self.vocab + part  # exact for bigrams; int64 wrap-around only mixes longer ones
            bucket = torch.remainder(code * _MIX, self.buckets)
            valid = torch.stack(parts).ne(PAD).all(dim=0)
            found.append(torch.where(valid, self.vocab + bucket, torch.zeros_like(bucket)))
        return found


class TextTransformer(nn.Module):
    """A small Transformer encoder: token embeddings plus sinusoidal positions (no length limit, nothing to
    size from the data), `layers` pre-norm encoder layers, the mean over the text's tokens, a linear head."""

    inputs = TOKEN_IDS

    def __init__(
        self,
        in_features: int,
        out_features: int,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff_dim: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
        self.d_model = d_model
        self.embed = nn.Embedding(in_features, d_model, padding_idx=PAD)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Texts are left-aligned: the batch's columns past its longest text are padding everywhere, and
        # attention costs the square of the length. (One host sync per batch; tiny next to the encoder.)
        longest = int(x.ne(PAD).sum(dim=1).max()) if x.numel() else 1
        x = x[:, : max(1, longest)]
        pad = x.eq(PAD)
        pad[:, 0] = False  # an empty text attends to its first slot: a fully masked row would give NaN
        h = self.embed(x) * math.sqrt(self.d_model) + positions(x.shape[1], self.d_model, x.device)
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.head(self.norm((h * keep).sum(dim=1) / keep.sum(dim=1)))


def positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """The sinusoidal position encodings of "Attention Is All You Need", (length, dim)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table
