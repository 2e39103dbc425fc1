"""Framework-free weight handling: PyTorch <-> MindSpore name rules, safe reading, atomic writing."""
from .io import read_weights, write_weights
from .naming import WeightMismatchError, convert_state_dict, rename_hook
from .safe_pickle import UnsafeCheckpointError

__all__ = ["convert_state_dict", "rename_hook", "WeightMismatchError", "read_weights", "write_weights",
           "UnsafeCheckpointError"]
