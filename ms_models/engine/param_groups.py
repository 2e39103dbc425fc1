"""Parameter groups: the generic decay / no-decay split and validation of task groups.

A group is ``{'name': str, 'params': [Parameter], 'weight_decay': float}`` with optional
``'warmup_start_lr'`` (float) and ``'lr_scale'`` (float, default 1).
"""
from mindspore import nn

_NORM_CELLS = tuple(c for c in (getattr(nn, n, None) for n in (
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")) if c is not None)
_NO_DECAY_NAMES = ("gamma", "beta", "bias")


def default_param_groups(model, weight_decay):
    """Two groups over the trainable parameters: ``decay`` (conv/dense weights and the like) with
    ``weight_decay``, and ``no_decay`` (norm-layer parameters and biases) with 0."""
    no_decay_ids = set()
    for _, cell in model.cells_and_names():
        if isinstance(cell, _NORM_CELLS):
            no_decay_ids.update(id(p) for p in cell.get_parameters(expand=False))
    decay, no_decay = [], []
    for p in model.trainable_params():
        leaf = p.name.rsplit(".", 1)[-1]
        (no_decay if id(p) in no_decay_ids or leaf in _NO_DECAY_NAMES else decay).append(p)
    return [{"name": "decay", "params": decay, "weight_decay": float(weight_decay)},
            {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]


def check_param_groups(groups):
    """Validate task groups and drop empty ones; returns the list the optimizer is built from."""
    if not groups:
        raise ValueError("task.param_groups(model) returned no groups")
    seen, out = {}, []
    for i, g in enumerate(groups):
        name = g.get("name", f"group{i}")
        for key in ("params", "weight_decay"):
            if key not in g:
                raise ValueError(f"param group '{name}' has no '{key}' key (task.param_groups)")
        for p in g["params"]:
            if id(p) in seen:
                raise ValueError(f"parameter '{p.name}' is in two param groups: '{seen[id(p)]}' and '{name}'")
            if not p.requires_grad:
                raise ValueError(f"parameter '{p.name}' in group '{name}' has requires_grad=False; "
                                 "leave frozen parameters out of the groups")
            seen[id(p)] = name
        if g["params"]:
            out.append(dict(g, name=name))
    if not out:
        raise ValueError("task.param_groups(model) returned only empty groups")
    return out
