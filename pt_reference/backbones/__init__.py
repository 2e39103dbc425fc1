"""PyTorch reference backbones (timm); importing registers their builders."""
from . import timm_models

__all__ = ["timm_models"]
