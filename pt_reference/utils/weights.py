"""Move numpy state dicts in and out of PyTorch modules, checking names and shapes strictly."""
import numpy as np
import torch

from common.weights import WeightMismatchError, convert_state_dict


def state_numpy(module):
    """``{name: np.ndarray}`` of ``module.state_dict()`` (buffers included)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def target_shapes(module):
    """``{name: shape tuple}`` of ``module.state_dict()``, the target of an ms2pt conversion."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def load_numpy_state(module, state, strict=True):
    """Copy ``{name: np.ndarray}`` into ``module``; values are cast to each entry's dtype.

    Raises:
        WeightMismatchError: listing every missing, unexpected and mis-shaped name (missing and
            unexpected are tolerated when ``strict`` is False; mis-shaped never are).
    """
    own = module.state_dict()
    missing = [(k, tuple(v.shape)) for k, v in own.items() if k not in state]
    unexpected = [(k, tuple(np.shape(v))) for k, v in state.items() if k not in own]
    mismatched = [(k, tuple(v.shape), k, tuple(np.shape(state[k]))) for k, v in own.items()
                  if k in state and tuple(np.shape(state[k])) != tuple(v.shape)]
    if mismatched or (strict and (missing or unexpected)):
        raise WeightMismatchError(missing if strict else (), unexpected if strict else (), mismatched,
                                  context="(loading into a PyTorch module)")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v).reshape(np.shape(v))).to(own[k].dtype) for k, v in state.items() if k in own}
    module.load_state_dict(tensors, strict=strict)


def load_ms_state_into(module, ms_state, hooks=None, strict=True):
    """Convert a MindSpore-named ``{name: np.ndarray}`` with the generic rules (+ ``hooks``) and load it."""
    load_numpy_state(module, convert_state_dict(ms_state, target_shapes(module), "ms2pt", hooks, strict), strict)


def calibrate_bn_statistics(module, x):
    """Set every BatchNorm2d's running statistics to those of the batch ``x`` (numpy, one
    train-mode forward with a cumulative average), restore each momentum, and leave ``module`` in
    train mode. Gives test networks realistic activation scales instead of random statistics."""
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch the statistics are that batch's
    module.train()
    with torch.no_grad():
        module(torch.from_numpy(x))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return bns
