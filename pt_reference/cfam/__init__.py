"""CFAM / UFineBench text-based person retrieval (PyTorch reference); importing registers ``cfam``."""
from pt_reference.registry import register_model

from .model import CFAM, GranularityDecoder, MatchingHead
from .task import CFAMTask, build_task


@register_model
def cfam(**kwargs):
    """CFAM on a CLIP base (``CFAM`` arguments; ViT-B/16 + 512x12x8 text tower by default)."""
    return CFAM(**kwargs)


__all__ = ["CFAM", "CFAMTask", "GranularityDecoder", "MatchingHead", "build_task", "cfam"]
