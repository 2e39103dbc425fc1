"""MindSpore backbones mirroring timm (ResNet, ViT/DeiT); importing registers their builders."""
from . import clip, resnet, vit

__all__ = ["clip", "resnet", "vit"]
from . import convnext, mlp_mixer, mobilenetv2, resmlp, swin  # noqa: E402  (OFA-KD backbones)

__all__ += ["convnext", "mlp_mixer", "mobilenetv2", "resmlp", "swin"]
