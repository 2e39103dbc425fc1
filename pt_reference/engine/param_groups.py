"""Parameter groups: the generic decay / no-decay split and validation of task groups.

A group is ``{'name': str, 'params': [Parameter], 'weight_decay': float}`` with optional
``'warmup_start_lr'`` (float) and ``'lr_scale'`` (float, default 1).
"""
from torch import nn

_NORM_MODULES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def default_param_groups(model, weight_decay):
    """Two groups over the trainable parameters: ``decay`` (conv/linear weights and the like) with
    ``weight_decay``, and ``no_decay`` (norm-layer parameters and biases) with 0."""
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, _NORM_MODULES):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if id(p) in no_decay_ids or name.rsplit(".", 1)[-1] == "bias" else decay).append(p)
    return [{"name": "decay", "params": decay, "weight_decay": float(weight_decay)},
            {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]


def check_param_groups(groups, model):
    """Validate task groups and drop empty ones; returns the list the optimizer is built from."""
    if not groups:
        raise ValueError("task.param_groups(model) returned no groups")
    names = {id(p): n for n, p in model.named_parameters()}
    seen, out = {}, []
    for i, g in enumerate(groups):
        name = g.get("name", f"group{i}")
        for key in ("params", "weight_decay"):
            if key not in g:
                raise ValueError(f"param group '{name}' has no '{key}' key (task.param_groups)")
        for p in g["params"]:
            pname = names.get(id(p), "<not a model parameter>")
            if id(p) in seen:
                raise ValueError(f"parameter '{pname}' is in two param groups: '{seen[id(p)]}' and '{name}'")
            if not p.requires_grad:
                raise ValueError(f"parameter '{pname}' in group '{name}' has requires_grad=False; "
                                 "leave frozen parameters out of the groups")
            seen[id(p)] = name
        if g["params"]:
            out.append(dict(g, name=name))
    if not out:
        raise ValueError("task.param_groups(model) returned only empty groups")
    return out
