"""PPT token pruning and pooling (PyTorch reference on timm): registers ``ppt_deit_*`` and ``ppt_vit_custom``."""
from .model import PPTBlock, apply_patch, effective_tau, token_schedule

__all__ = ["PPTBlock", "apply_patch", "effective_tau", "token_schedule"]
