"""Plain `nn.Module`s. Any module taking `in_features` and `out_features` works through `_target_`."""

from mlproj.models.linear import Linear
from mlproj.models.mlp import MLP
from mlproj.models.sequence import GRU, TCN

__all__ = ["GRU", "MLP", "TCN", "Linear"]
