"""Species196 benchmark harness (PyTorch reference): the twin of ``ms_models.species196``."""
from . import cnn, mae, vit, zero_shot  # noqa: F401  (registers the builders)

__all__ = ["cnn", "mae", "vit", "zero_shot"]
