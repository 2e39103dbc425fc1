"""Pruning masks stored in the model (twin of ``ms_models/rpg/masks.py``).

Prunable layers are those of the official ``get_W``: every ``Linear`` and every other module with a
``weight`` of more than one dimension except BatchNorm (all convs incl. stem and downsample, and
fc), in module order. Each gets a float32 0/1 buffer ``<layer>.weight_mask``; the root gets an int64
buffer ``rpg_step`` of shape (1,) (iterations run so far; MindSpore checkpoints store 0-d values as (1,)). Both are checkpointed with the model, so masks and the
schedule survive a resume and convert to MindSpore by name.
"""
import torch
from torch import nn

MASK_NAME = "weight_mask"
STEP_NAME = "rpg_step"
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.GroupNorm)


def prunable_layers(model):
    """``[(module name, module, is_linear)]`` of the layers whose weight is pruned, in module order."""
    out = []
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if isinstance(m, nn.Linear):
            out.append((name, m, True))
        elif isinstance(w, nn.Parameter) and w.dim() > 1 and not isinstance(m, _NORMS):
            out.append((name, m, False))
    return out


def attach_masks(model):
    """Add an all-ones ``weight_mask`` buffer to every prunable layer and ``rpg_step`` = 0 to the root."""
    for _, m, _ in prunable_layers(model):
        if not hasattr(m, MASK_NAME):
            m.register_buffer(MASK_NAME, torch.ones_like(m.weight, dtype=torch.float32))
    if not hasattr(model, STEP_NAME):
        model.register_buffer(STEP_NAME, torch.zeros((1,), dtype=torch.int64))
    return model


def is_rpg_state_key(key):
    """True for mask and step entries (absent from a plain, deployable network)."""
    return key == STEP_NAME or key.endswith("." + MASK_NAME)


def strip_rpg_state(state):
    """The weights of a deployable network: ``state`` without masks and the step counter."""
    return {k: v for k, v in state.items() if not is_rpg_state_key(k)}
