"""Plain `nn.Module`s. Any module taking `in_features` and `out_features` works through `_target_`; one that
also takes `in_shape` gets one example's shape (C x H x W for images) and is checked against it at startup;
one that takes `categories` gets the sizes of a table's categorical one-hot blocks (mlproj.models.tabular)."""

from mlproj.models.cnn import CNN
from mlproj.models.linear import Linear
from mlproj.models.mlp import MLP
from mlproj.models.resnet import ResNet
from mlproj.models.sequence import GRU, TCN
from mlproj.models.tabular import FTTransformer, ResNetMLP

__all__ = ["CNN", "GRU", "MLP", "TCN", "FTTransformer", "Linear", "ResNet", "ResNetMLP"]
