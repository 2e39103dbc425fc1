"""YOLOv6 parameter groups for Gold-YOLO, by parameter name (framework-free).

Official ``build_optimizer``: BatchNorm weights without decay, other weights with decay, every bias
without decay and with the bias warm-up. ``BottleRep.alpha`` is in no group (never optimised) unless
``train_alpha``; non-trainable entries (``detect.proj``, ``proj_conv``) are left out by the caller.
"""
def effective_weight_decay(weight_decay, batch_size, batch_size_ref=64):
    """Official scaling: ``wd * batch * accumulate / 64`` with ``accumulate = max(1, round(64 / batch))``;
    ``batch_size`` is the global batch (the engine splits it over data-parallel processes)."""
    accumulate = max(1, round(batch_size_ref / batch_size))
    return weight_decay * batch_size * accumulate / batch_size_ref


def group_kind(name, norm_weight_names=("gamma",), bias_names=("bias", "beta")):
    """'bn', 'bias', 'alpha' or 'weight' for a parameter name."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in bias_names:
        return "bias"
    if leaf in norm_weight_names:
        return "bn"
    if leaf == "alpha":
        return "alpha"
    return "weight"


def yolov6_groups(named_params, weight_decay, warmup_bias_lr, train_alpha=False, is_norm_weight=None):
    """Three groups from ``(name, param)`` pairs of trainable parameters.

    ``is_norm_weight(name)`` decides BN weights when their leaf name is not distinctive (PyTorch
    'weight'); by default the MindSpore leaf 'gamma' marks them.
    """
    groups = {"bn": [], "weight": [], "bias": []}
    for name, p in named_params:
        kind = group_kind(name)
        if kind == "weight" and is_norm_weight is not None and is_norm_weight(name):
            kind = "bn"
        if kind == "alpha":
            if not train_alpha:
                continue
            kind = "bn"
        groups[kind].append(p)
    return [{"name": "bn_weight", "params": groups["bn"], "weight_decay": 0.0},
            {"name": "weight", "params": groups["weight"], "weight_decay": float(weight_decay)},
            {"name": "bias", "params": groups["bias"], "weight_decay": 0.0,
             "warmup_start_lr": float(warmup_bias_lr)}]
