"""torch.optim SGD / AdamW over the task's parameter groups, with per-group lr, momentum and weight
decay set every iteration (the mirror of ms_models/engine/optim.py)."""
import torch


def build_optimizer(groups, opts):
    """``torch.optim.SGD`` (momentum, nesterov, dampening 0) or ``torch.optim.AdamW`` by
    ``opts.optimizer``; the group dicts keep their extra keys (name, warmup_start_lr, ...)."""
    torch_groups = [dict(g, params=list(g["params"])) for g in groups]
    if opts.optimizer == "sgd":
        return torch.optim.SGD(torch_groups, lr=opts.lr, momentum=opts.momentum, nesterov=opts.nesterov)
    if opts.optimizer == "adamw":
        return torch.optim.AdamW(torch_groups, lr=opts.lr, betas=tuple(opts.betas), eps=opts.eps)
    raise ValueError(f"train.optimizer: unknown optimizer '{opts.optimizer}' (sgd, adamw)")


def set_hyperparams(optimizer, lrs, moms, wds):
    """Write this iteration's per-group values into ``optimizer.param_groups`` (momentum for SGD
    only; AdamW keeps its betas)."""
    for group, lr, mom, wd in zip(optimizer.param_groups, lrs, moms, wds):
        group["lr"] = float(lr)
        group["weight_decay"] = float(wd)
        if "momentum" in group:
            group["momentum"] = float(mom)
