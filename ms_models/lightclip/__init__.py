"""LightCLIP (arXiv 2312.00674) lightweight CLIP training; importing registers ``lightclip``
and the EfficientNet-Lite0 backbone."""
from ms_models.registry import register_model

from ..backbones import efficientnet_lite  # noqa: F401  (registers efficientnet_lite0)
from .model import LightCLIP
from .task import LightCLIPTask, build_task


@register_model
def lightclip(**kwargs):
    """LightCLIP (``LightCLIP`` arguments)."""
    return LightCLIP(**kwargs)


__all__ = ["LightCLIP", "LightCLIPTask", "build_task", "lightclip"]
