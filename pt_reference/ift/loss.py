"""mu-law tonemapping and the tonemapped L1 loss (PyTorch twin of ``ms_models.ift.loss``)."""
import math

import torch

MU = 5000.0


def mu_law(x, mu=MU):
    """T(H) = log(1 + mu H) / log(1 + mu)."""
    return torch.log(1.0 + mu * x) / math.log(1.0 + mu)


def mu_l1_loss(pred, label, mu=MU):
    """mean |T(pred) - T(label)|."""
    return (mu_law(pred, mu) - mu_law(label, mu)).abs().mean()
