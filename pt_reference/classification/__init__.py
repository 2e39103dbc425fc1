"""Image classification family (PyTorch reference): the twin of ``ms_models.classification``."""
from .task import ClassificationTask, build_task, soft_target_cross_entropy

__all__ = ["ClassificationTask", "build_task", "soft_target_cross_entropy"]
