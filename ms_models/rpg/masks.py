"""Pruning masks stored in the network (twin of ``pt_reference/rpg/masks.py``).

Prunable layers are those of the official ``get_W``: every ``Dense`` and every other cell with a
``weight`` of more than one dimension except norm layers (all convs incl. stem and downsample, and
fc), in cell order. Each gets a float32 0/1 Parameter ``<layer>.weight_mask`` (requires_grad=False)
and the root an int32 Parameter ``rpg_step`` of shape (1,) (iterations run so far; a
MindSpore checkpoint stores 0-d values as (1,)). Both are checkpointed with
the model, so masks and the schedule survive a resume and convert to PyTorch by name.
"""
import numpy as np
from mindspore import Parameter, Tensor, nn

MASK_NAME = "weight_mask"
STEP_NAME = "rpg_step"
_NORMS = tuple(c for c in (getattr(nn, n, None) for n in (
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm")) if c is not None)


def prunable_layers(net):
    """``[(cell name, cell, is_linear)]`` of the layers whose weight is pruned, in cell order."""
    out = []
    for name, cell in net.cells_and_names():
        w = getattr(cell, "weight", None)
        if isinstance(cell, nn.Dense):
            out.append((name, cell, True))
        elif isinstance(w, Parameter) and len(w.shape) > 1 and not isinstance(cell, _NORMS):
            out.append((name, cell, False))
    return out


def attach_masks(net):
    """Add an all-ones ``weight_mask`` Parameter to every prunable layer and ``rpg_step`` = 0 to the root."""
    for name, cell, _ in prunable_layers(net):
        if getattr(cell, MASK_NAME, None) is None:
            mask = Parameter(Tensor(np.ones(cell.weight.shape, np.float32)), name=f"{name}.{MASK_NAME}",
                             requires_grad=False)
            setattr(cell, MASK_NAME, mask)
    if getattr(net, STEP_NAME, None) is None:
        setattr(net, STEP_NAME, Parameter(Tensor(np.zeros((1,), np.int32)), name=STEP_NAME, requires_grad=False))
    return net


def is_rpg_state_key(key):
    """True for mask and step entries (absent from a plain, deployable network)."""
    return key == STEP_NAME or key.endswith("." + MASK_NAME)


def strip_rpg_state(state):
    """The weights of a deployable network: ``state`` without masks and the step counter."""
    return {k: v for k, v in state.items() if not is_rpg_state_key(k)}
