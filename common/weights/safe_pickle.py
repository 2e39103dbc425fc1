"""Read PyTorch pickles without ever running code from them.

Two paths, both refusing anything that could execute:

1. ``torch.load(weights_only=True)``: plain state_dicts and containers of tensors.
2. Whole pickled modules (official Gold-YOLO checkpoints keep an fp16 ``nn.Module`` under
   ``ckpt['model']``, possibly with ``torch.nn.SyncBatchNorm`` and classes from ``yolov6.*``,
   ``gold_yolo.*``, ``mmcv.cnn.*``) are read through a restricted Unpickler handed to
   ``torch.load(pickle_module=...)``.  Its ``find_class`` maps every class under an allowed prefix to
   an inert stub that only stores its pickled state; the module tree is then walked
   (``_parameters`` / ``_buffers`` / ``_modules``) to rebuild the state_dict.  Any other global
   (``os.system``, ``builtins.eval``, ``functools.partial`` ...) raises ``UnsafeCheckpointError``.

torch is imported lazily so that ``common`` stays framework-free at import time.
"""
import _compat_pickle
import pickle
import types
import zipfile

# Globals under these prefixes become inert stubs (never imported, never called).  Gold-YOLO
# modules also keep ``torch.nn.functional.adaptive_avg_pool2d`` as an attribute.
DEFAULT_STUB_PREFIXES = ("yolov6.", "gold_yolo.", "mmcv.cnn.", "torch.nn.modules.", "torch.nn.functional.")

# Harmless globals that module state and checkpoint metadata need: hook dicts, the
# non-persistent buffer set, numpy scalars (YOLOv6 keeps COCO results as numpy floats).
_SAFE_GLOBALS = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
                 ("builtins", "slice"), ("builtins", "complex"),
                 ("numpy", "dtype"), ("numpy", "ndarray"),
                 ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                 ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_TORCH_DTYPES = ("float16", "float32", "float64", "bfloat16", "uint8", "int8", "int16", "int32",
                 "int64", "bool", "half", "float", "double", "long", "int")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint references a global outside the allow-list; nothing from it was executed."""

    def __init__(self, global_name, path, stub_prefixes=DEFAULT_STUB_PREFIXES):
        self.global_name = global_name
        self.path = str(path)
        super().__init__(
            f"refusing to load '{self.path}': it references the global '{global_name}', which is not "
            f"on the allow-list (classes under {', '.join(stub_prefixes)}, tensors, OrderedDict, "
            f"numpy scalars and plain containers). Nothing from the file was executed.")


class ModuleStub:
    """Inert stand-in for a pickled class: stores constructor args and pickled state, nothing else."""

    _origin = "?"

    def __init__(self, *args, **kwargs):
        self._stub_args = args
        self._stub_kwargs = kwargs

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slots state)
            merged = {}
            for part in state:
                merged.update(part or {})
            state = merged
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._stub_state = state

    def __repr__(self):
        return f"<stub of {self._origin}>"


def _parameter_data(data, *_ignored):
    # Stands in for torch._utils._rebuild_parameter(_with_state): keep the tensor, drop the rest.
    return data


def _make_pickle_module(path, stub_prefixes):
    import torch
    import torch._utils as tutils

    allowed = {("torch._utils", "_rebuild_tensor_v2"): tutils._rebuild_tensor_v2,
               ("torch._utils", "_rebuild_parameter"): _parameter_data,
               ("torch._utils", "_rebuild_parameter_with_state"): _parameter_data,
               ("torch", "Size"): torch.Size}
    stubs = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            # Protocol-2 pickles (torch.save's default) spell Python 2 names: __builtin__.set
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            if (module, name) in allowed:
                return allowed[(module, name)]
            if (module, name) in _SAFE_GLOBALS:
                return super().find_class(module, name)
            if module == "torch" and name in _TORCH_DTYPES:
                return getattr(torch, name)
            full = f"{module}.{name}"
            if any(full.startswith(p) for p in stub_prefixes):
                if full not in stubs:
                    stubs[full] = type(name, (ModuleStub,), {"_origin": full})
                return stubs[full]
            raise UnsafeCheckpointError(full, path, stub_prefixes)

    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    shim = types.ModuleType("common.weights.safe_pickle_shim")
    shim.Unpickler = RestrictedUnpickler
    shim.load = load
    return shim


def _is_torchscript(path):
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("constants.pkl") for n in zf.namelist())


def torch_load_safe(path, stub_prefixes=DEFAULT_STUB_PREFIXES):
    """Load a torch pickle without executing code.

    Returns whatever the file holds (dicts, tensors); pickled modules come back as ``ModuleStub``
    trees, to be flattened with ``stub_state_dict``.

    Raises:
        UnsafeCheckpointError: the file references a global outside the allow-list.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # not a plain tensor container: try the module-stub path
    if _is_torchscript(path):
        raise ValueError(f"'{path}' is a TorchScript archive; export a state_dict with torch.save instead")
    shim = _make_pickle_module(path, tuple(stub_prefixes))
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=shim)


def stub_state_dict(stub, prefix=""):
    """Flatten a ``ModuleStub`` tree like ``nn.Module.state_dict()``: ``{name: torch.Tensor}``.

    Parameters and persistent buffers in registration order, children recursively; ``None``
    entries are skipped, as torch does.
    """
    state = {}
    attrs = stub.__dict__
    for name, value in (attrs.get("_parameters") or {}).items():
        if value is not None:
            state[prefix + name] = value
    skip = attrs.get("_non_persistent_buffers_set") or set()
    for name, value in (attrs.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            state[prefix + name] = value
    for name, child in (attrs.get("_modules") or {}).items():
        if child is not None:
            state.update(stub_state_dict(child, f"{prefix}{name}."))
    return state
