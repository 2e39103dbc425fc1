"""Image classification family (MindSpore): the task used by the engine for ResNet/ViT/DeiT."""
from .task import ClassificationTask, build_task, soft_target_cross_entropy

__all__ = ["ClassificationTask", "build_task", "soft_target_cross_entropy"]
