"""PPT token pruning and pooling (MindSpore): importing this package registers ``ppt_deit_*`` and ``ppt_vit_custom``."""
from .model import PPTBlock, PPTVisionTransformer, PPTVisionTransformerDistilled, effective_tau, token_schedule

__all__ = ["PPTBlock", "PPTVisionTransformer", "PPTVisionTransformerDistilled", "effective_tau", "token_schedule"]
