"""MindSpore backbones mirroring timm (ResNet, ViT/DeiT); importing registers their builders."""
from . import resnet, vit

__all__ = ["resnet", "vit"]
