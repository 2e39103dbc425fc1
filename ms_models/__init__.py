from . import platform  # noqa: F401  (must precede the first mindspore import)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
