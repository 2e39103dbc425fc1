"""OFA-KD (arXiv 2310.19444): one-for-all distillation between heterogeneous architectures.

Student stage taps (``taps``), per-stage branch projectors into the logit space (``projectors``),
the OFA loss with its target-enhancement exponent (``loss``) and the distiller that combines them
with a frozen teacher (``distiller``); ``task.build_task`` plugs it into the engine.
"""
from .distiller import OFADistiller
from .loss import kd_loss, ofa_loss, target_mask
from .projectors import CNNProjector, PatchMerging, SepConv, TokenProjector, build_projector
from .taps import student_taps

__all__ = ["CNNProjector", "OFADistiller", "PatchMerging", "SepConv", "TokenProjector", "build_projector",
           "kd_loss", "ofa_loss", "student_taps", "target_mask"]
