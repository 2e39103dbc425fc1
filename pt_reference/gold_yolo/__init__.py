"""Gold-YOLO (PyTorch reference twin): importing this package registers ``gold_yolo_{n,s,m,l}``."""
from .model import GoldYOLO, VARIANTS
from .reparam import switch_to_deploy

__all__ = ["GoldYOLO", "VARIANTS", "switch_to_deploy"]
