"""Text tables: one free-text column and a target (`data=text_csv`), as token ids for the built-in task.

The tokenizer is a vocabulary fitted on the training split only, and its whole state is plain JSON (the
packaged model rebuilds it without running stored code): words and punctuation marks by one fixed rule
(`SCHEME`; a rule stored in the model would be code, e.g. a regular expression that backtracks forever),
lowercased or not, the `max_vocab` most frequent tokens seen at least `min_count` times. Id 0 pads, id 1 is
any token outside the vocabulary. A text becomes a row of `length` ids, its first tokens left-aligned and
padded with 0, so the splits are int64 tensors that go through the same on-device batches as a table
(mlproj.data.batches). Networks that take them declare `inputs = "token_ids"` (mlproj.models.text).

Light to import (no torch, no Lightning): the packaged model's predictor uses it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlproj.data.base import DataSource, check_seed, check_split_fractions
from mlproj.data.preprocess import InputError, Preprocessor, _label_sort_key, _plain
from mlproj.errors import ConfigError
from mlproj.metrics import CLASSIFICATION, REGRESSION

if TYPE_CHECKING:
    from mlproj.data.prepare import PreparedData

SCHEME = "words-v1"  # the one tokenizing rule; a model naming another is refused
_TOKEN = re.compile(r"\w+|[^\w\s]")  # words (Unicode letters, digits, _) and single punctuation marks
PAD, UNKNOWN, FIRST_ID = 0, 1, 2
TOKEN_IDS = "token_ids"  # what a text source gives the network (a model class's `inputs`)
MAX_TOKEN_CHARS = 1000  # a loaded vocabulary's limits: it is untrusted data
MAX_LENGTH = 100_000


@dataclass
class Vocabulary:
    """Token -> id (its index + FIRST_ID), fitted on training texts; JSON in and out."""

    tokens: list[str]
    lowercase: bool = True
    scheme: str = SCHEME

    def __post_init__(self) -> None:
        self.index = {token: i + FIRST_ID for i, token in enumerate(self.tokens)}

    @classmethod
    def fit(cls, texts: pd.Series, max_vocab: int, min_count: int, lowercase: bool) -> Vocabulary:
        counts = Counter(tok for text in _strings(texts) for tok in split_words(text, lowercase))
        # Most frequent first; ties by token, so the same texts always give the same ids.
        ranked = sorted((c, t) for t, c in counts.items() if c >= min_count)
        ranked.sort(key=lambda ct: (-ct[0], ct[1]))
        return cls([t for _, t in ranked[:max_vocab]], lowercase)

    @property
    def size(self) -> int:
        """Ids in use, padding and unknown included: the embedding table's rows."""
        return len(self.tokens) + FIRST_ID

    def encode(self, texts: pd.Series, length: int) -> np.ndarray:
        ids = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(_strings(texts)):
            found = [self.index.get(tok, UNKNOWN) for tok in split_words(text, self.lowercase)[:length]]
            ids[row, : len(found)] = found
        return ids

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "lowercase": self.lowercase, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, state: Any) -> Vocabulary:
        if not isinstance(state, dict) or state.get("scheme") != SCHEME:
            raise InputError(f"tokenizer: not a {SCHEME} vocabulary")
        tokens, lowercase = state.get("tokens"), state.get("lowercase")
        if not isinstance(lowercase, bool) or not isinstance(tokens, list):
            raise InputError("tokenizer: `tokens` must be a list and `lowercase` a boolean")
        if not all(isinstance(t, str) and 0 < len(t) <= MAX_TOKEN_CHARS for t in tokens):
            raise InputError("tokenizer: every token must be a non-empty string")
        if len(set(tokens)) != len(tokens):
            raise InputError("tokenizer: tokens must be distinct")
        return cls(tokens, lowercase)


def split_words(text: str, lowercase: bool) -> list[str]:
    return _TOKEN.findall(text.lower() if lowercase else text)


def _strings(texts: pd.Series) -> list[str]:
    # A missing text is an empty one (all padding); anything else is read as its string.
    return ["" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value) for value in texts]


@dataclass
class TextPreprocessor:
    """The fitted state of a text table: which column, its vocabulary and row length, and the target's encoding
    (a table Preprocessor without feature columns). What the packaged model stores under `inputs`."""

    column: str
    vocab: Vocabulary
    length: int
    target: Preprocessor  # task, labels, target_mean / target_std

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def labels(self) -> list[Any]:
        return self.target.labels

    @property
    def target_mean(self) -> float:
        return self.target.target_mean

    @property
    def target_std(self) -> float:
        return self.target.target_std

    @property
    def num_features(self) -> int:
        """The network's `in_features`: the vocabulary's size (ids 0..size-1)."""
        return self.vocab.size

    @property
    def input_columns(self) -> list[str]:
        return [self.column]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if self.column not in frame.columns:
            raise InputError(f"input is missing the text column {self.column!r}; columns: {list(frame.columns)}")
        return self.vocab.encode(frame[self.column], self.length)

    def encode_target(self, target: pd.Series) -> np.ndarray:
        return self.target.encode_target(target)

    def decode_regression(self, scaled: np.ndarray) -> np.ndarray:
        return self.target.decode_regression(scaled)

    def inputs(self) -> dict[str, Any]:
        """The packaged model's `inputs` (mlproj.packaging.pyfunc.INPUT_PREDICTORS["text"])."""
        return {
            "kind": "text",
            "column": self.column,
            "length": self.length,
            "tokenizer": self.vocab.to_dict(),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }

    @classmethod
    def from_inputs(cls, inputs: dict[str, Any], task: str, labels: list[Any]) -> TextPreprocessor:
        column, length = inputs.get("column"), inputs.get("length")
        if not isinstance(column, str) or not isinstance(length, int) or not 0 < length <= MAX_LENGTH:
            raise InputError(f"text inputs: `column` must be a string and `length` an integer in 1..{MAX_LENGTH}")
        if task not in (CLASSIFICATION, REGRESSION) or not isinstance(labels, list):
            raise InputError(f"text inputs: unknown task {task!r}")
        mean, std = inputs.get("target_mean", 0.0), inputs.get("target_std", 1.0)
        if not all(isinstance(v, int | float) for v in (mean, std)):
            raise InputError("text inputs: target_mean and target_std must be numbers")
        target = Preprocessor(task=task, labels=labels, target_mean=float(mean), target_std=float(std))
        return cls(column, Vocabulary.from_dict(inputs.get("tokenizer")), length, target)


def fit_text(texts: pd.Series, target: pd.Series, task: str, source: TextFile) -> TextPreprocessor:
    """Fitted on the training split only: the vocabulary, the row length (the longest training text, at most
    `max_length` tokens) and the target's encoding."""
    vocab = Vocabulary.fit(texts, source.max_vocab, source.min_count, source.lowercase)
    longest = max((len(split_words(t, source.lowercase)) for t in _strings(texts)), default=1)
    pre = Preprocessor(task=task)
    if task == REGRESSION:
        y = target.astype("float64")
        pre.target_mean, pre.target_std = float(y.mean()), float(y.std(ddof=0)) or 1.0
    else:
        pre.labels = [_plain(v) for v in sorted(target.unique(), key=_label_sort_key)]
    return TextPreprocessor(source.text_column, vocab, max(1, min(longest, source.max_length)), pre)


@dataclass(kw_only=True, eq=False)
class TextFile(DataSource):
    """A table with one free-text column and a target: a .csv (also compressed) or .parquet file.

    Other columns are ignored. Split reproducibly (stratified for classification) as tables are; the
    vocabulary is fitted on the training split only."""

    path: str
    text_column: str
    target: str
    task: Literal["auto", "regression", "classification"] = "auto"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 42
    batch_size: int = 64
    shuffle: bool = True
    max_vocab: int = 30000  # the most frequent training tokens kept; rarer ones become "unknown"
    min_count: int = 1  # a token seen fewer times in training is "unknown"
    max_length: int = 256  # tokens kept per text (its first ones)
    lowercase: bool = True

    # Networks of the built-in task must take token ids (mlproj.plan checks a model class's `inputs`).
    model_inputs = TOKEN_IDS
    model_hint = "choose model=embedding_bag or model=text_transformer"

    def __post_init__(self) -> None:
        check_split_fractions(self.val_fraction, self.test_fraction)
        check_seed("data.split_seed", self.split_seed)
        for key in ("batch_size", "max_vocab", "min_count", "max_length"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}={getattr(self, key)} must be >= 1")
        if self.max_length > MAX_LENGTH:
            raise ConfigError(f"data.max_length={self.max_length} must be <= {MAX_LENGTH}")

    def load(self) -> Any:
        from mlproj.data.sources import TableFile

        table = TableFile(path=self.path, target=self.target).load()
        if self.text_column not in table.features.columns:
            columns = ", ".join(map(str, [*table.features.columns, self.target]))
            raise ConfigError(
                f"data.text_column={self.text_column!r} is not a column of {self.path}; columns: {columns}"
            )
        table.features = table.features[[self.text_column]]
        return table

    def prepare(self) -> PreparedData:
        from mlproj.data.prepare import PreparedData, Split, resolve_task, split_indices

        table = self.load()
        task = resolve_task(table, self)
        parts = split_indices(table, task, self)
        texts, target = table.features[self.text_column], table.target
        pre = fit_text(texts.iloc[parts["train"]], target.iloc[parts["train"]], task, self)
        if task == CLASSIFICATION:
            unseen = {_plain(v) for v in target} - set(pre.labels)
            if unseen:
                shown = sorted(unseen, key=str)[:10]
                raise ConfigError(f"{len(unseen)} classes occur only outside the training split, e.g. {shown}")
        splits = {}
        for name, idx in parts.items():
            raw = table.features.iloc[idx].reset_index(drop=True)
            y = target.iloc[idx].reset_index(drop=True)
            splits[name] = Split(raw, y, pre.transform(raw), pre.encode_target(y))
        return PreparedData(table, task, pre, splits)  # type: ignore[arg-type]  # pre: a TextPreprocessor

    def loaders(self, prepared: PreparedData, seed: int, steps_per_chunk: int) -> dict[str, Any]:
        import torch

        from mlproj.data.batches import split_batches

        tensors = {name: (torch.from_numpy(s.x), torch.from_numpy(s.y)) for name, s in prepared.splits.items()}
        return split_batches(tensors, self.batch_size, self.shuffle, seed, steps_per_chunk)
