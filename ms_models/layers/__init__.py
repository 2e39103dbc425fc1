"""Shared MindSpore layers (names and numerics follow timm)."""
from .attention import Attention
from .drop_path import DropPath
from .features import take_indices
from .init import dense, layer_norm
from .mlp import Mlp
from .patch_embed import PatchEmbed

__all__ = ["Attention", "DropPath", "Mlp", "PatchEmbed", "dense", "layer_norm", "take_indices"]
