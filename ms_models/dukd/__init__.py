"""DUKD super-resolution distillation (MindSpore): importing this package registers the BasicSR
archs ``edsr``, ``rcan`` and ``swinir``."""
from .edsr import EDSR
from .rcan import RCAN
from .swinir import SwinIR

__all__ = ["EDSR", "RCAN", "SwinIR"]
