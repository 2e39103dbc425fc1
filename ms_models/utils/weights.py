"""Move numpy state dicts in and out of MindSpore networks, checking names and shapes strictly."""
import mindspore as ms
import numpy as np

from common.weights import WeightMismatchError, convert_state_dict


def state_numpy(net):
    """``{name: np.ndarray}`` of every parameter of ``net`` (``parameters_dict()``, BN statistics included)."""
    return {name: p.asnumpy() for name, p in net.parameters_dict().items()}


def target_shapes(net):
    """``{name: shape tuple}`` of ``net.parameters_dict()``, the target of a pt2ms conversion."""
    return {name: tuple(p.shape) for name, p in net.parameters_dict().items()}


def _check(params, state, strict):
    missing = [(k, tuple(p.shape)) for k, p in params.items() if k not in state]
    unexpected = [(k, tuple(np.shape(v))) for k, v in state.items() if k not in params]
    mismatched = [(k, tuple(p.shape), k, tuple(np.shape(state[k]))) for k, p in params.items()
                  if k in state and tuple(np.shape(state[k])) != tuple(p.shape)]
    if mismatched or (strict and (missing or unexpected)):
        raise WeightMismatchError(missing if strict else (), unexpected if strict else (), mismatched,
                                  context="(loading into a MindSpore network)")


def load_numpy_state(net, state, strict=True):
    """Copy ``{name: np.ndarray}`` into ``net``; values are cast to each parameter's dtype.

    Raises:
        WeightMismatchError: listing every missing, unexpected and mis-shaped name (missing and
            unexpected are tolerated when ``strict`` is False; mis-shaped never are).
    """
    params = net.parameters_dict()
    _check(params, state, strict)
    to_load = {}
    for name, value in state.items():
        if name in params:
            data = ms.Tensor(np.ascontiguousarray(value).reshape(np.shape(value))).astype(params[name].dtype)
            to_load[name] = ms.Parameter(data, name=name, requires_grad=params[name].requires_grad)
    not_loaded, unused = ms.load_param_into_net(net, to_load, strict_load=True)
    if strict and (not_loaded or unused):
        raise WeightMismatchError([(k, tuple(params[k].shape)) for k in not_loaded],
                                  [(k, tuple(np.shape(state[k]))) for k in unused],
                                  context="(MindSpore load_param_into_net)")


def load_pt_state_into(net, pt_state, hooks=None, strict=True):
    """Convert a PyTorch-named ``{name: np.ndarray}`` with the generic rules (+ ``hooks``) and load it."""
    load_numpy_state(net, convert_state_dict(pt_state, target_shapes(net), "pt2ms", hooks, strict), strict)
