"""PyTorch reference backbones (timm); importing registers their builders."""
from . import clip, timm_models

__all__ = ["clip", "timm_models"]
