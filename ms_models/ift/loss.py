"""mu-law tonemapping and the tonemapped L1 loss (MindSpore).

T(H) = log(1 + mu H) / log(1 + mu), mu = 5000;  loss = mean |T(pred) - T(label)|.
"""
import math

from mindspore import ops

MU = 5000.0


def mu_law(x, mu=MU):
    """mu-law tonemap of linear HDR values (same shape)."""
    return ops.log(1.0 + mu * x) / math.log(1.0 + mu)


def mu_l1_loss(pred, label, mu=MU):
    """mean |T(pred) - T(label)| (float32 scalar)."""
    return ops.abs(mu_law(pred, mu) - mu_law(label, mu)).mean()
