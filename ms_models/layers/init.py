"""Layer constructors with timm-like initialisation (truncated normal std 0.02 for linear layers)."""
from mindspore import nn
from mindspore.common.initializer import TruncatedNormal


def dense(in_features, out_features, bias=True, std=0.02):
    """``nn.Dense`` (weight (out, in), bias (out,)) with trunc-normal weights and zero bias."""
    return nn.Dense(in_features, out_features, weight_init=TruncatedNormal(std), bias_init="zeros", has_bias=bias)


def layer_norm(dim, eps=1e-6):
    """``nn.LayerNorm`` over the last axis; ``eps`` is always explicit (MindSpore's default is 1e-7)."""
    return nn.LayerNorm((dim,), epsilon=eps)
