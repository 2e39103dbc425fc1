"""Transformer MLP (timm ``Mlp``): fc1 -> exact GELU -> fc2, parameter names fc1/fc2."""
from mindspore import nn

from .init import dense


class Mlp(nn.Cell):
    """(..., in_features) -> (..., out_features) through ``hidden_features`` with erf GELU."""

    def __init__(self, in_features, hidden_features=None, out_features=None, bias=True):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = dense(in_features, hidden_features, bias)
        self.act = nn.GELU(approximate=False)
        self.fc2 = dense(hidden_features, out_features, bias)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))
