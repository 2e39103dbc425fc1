"""Official PyTorch state_dict names -> MindSpore parameter names for Gold-YOLO (framework-free).

Every BatchNorm of the model is a child named ``bn`` or ``rbr_identity``; its weight/bias/
running_mean/running_var become gamma/beta/moving_mean/moving_variance and ``num_batches_tracked``
is dropped. All other names (Sequential/ModuleList indices, ``c``/``conv``/``block``) are kept.
"""
BN_MODULES = ('bn', 'rbr_identity')
BN_RENAMES = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'moving_mean', 'running_var': 'moving_variance'}


def torch_name_to_ms(name):
    """MindSpore name for an official key, or None for ``num_batches_tracked``."""
    parent, _, leaf = name.rpartition('.')
    if leaf == 'num_batches_tracked':
        return None
    if parent.rpartition('.')[2] in BN_MODULES and leaf in BN_RENAMES:
        return f"{parent}.{BN_RENAMES[leaf]}"
    return name


def torch_state_to_ms(state):
    """{official key: array} -> {MindSpore name: array}, dropping ``num_batches_tracked``."""
    out = {}
    for key, value in state.items():
        ms_name = torch_name_to_ms(key)
        if ms_name is not None:
            out[ms_name] = value
    return out
