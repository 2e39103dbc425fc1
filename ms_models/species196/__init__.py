"""Species196 benchmark harness (MindSpore): supervised, FixMatch, MAE (pre-training, linear
probe, fine-tune) and zero-shot tracks. Importing registers ``species196_cnn``, ``species196_vit``,
``mae_vit_*`` and ``species196_tiny_clip``."""
from . import cnn, mae, vit, zero_shot  # noqa: F401  (registers the builders)

__all__ = ["cnn", "mae", "vit", "zero_shot"]
