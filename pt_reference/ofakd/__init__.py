"""OFA-KD (arXiv 2310.19444), PyTorch reference twin of ``ms_models.ofakd`` (timm backbones)."""
from .distiller import OFADistiller
from .loss import kd_loss, ofa_loss, target_mask
from .projectors import CNNProjector, PatchMerging, SepConv, TokenProjector, build_projector
from .taps import student_taps

__all__ = ["CNNProjector", "OFADistiller", "PatchMerging", "SepConv", "TokenProjector", "build_projector",
           "kd_loss", "ofa_loss", "student_taps", "target_mask"]
