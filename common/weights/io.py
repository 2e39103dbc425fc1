"""Read and write weight files as ``{name: np.ndarray}``, by file extension.

| extension            | read                                              | write            |
|----------------------|---------------------------------------------------|------------------|
| .pt .pth             | torch pickle, never executing code (safe_pickle)  | torch.save       |
| .safetensors         | own header parser (handles BF16)                  | safetensors      |
| .ckpt                | MindSpore checkpoint                              | ms.save_checkpoint |
| .npz                 | numpy, allow_pickle=False                         | numpy            |

torch and MindSpore are imported lazily, only for their own formats.  Writes are atomic: a
temporary file in the destination folder, then ``os.replace``.
"""
import json
import os
import struct
from pathlib import Path

import numpy as np

from .safe_pickle import ModuleStub, stub_state_dict, torch_load_safe

TORCH_EXTS = (".pt", ".pth")
EXTENSIONS = TORCH_EXTS + (".safetensors", ".ckpt", ".npz")
# Checkpoint containers, searched in this order when no key is given.
CONTAINER_KEYS = ("state_dict", "model", "params", "params_ema")

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _ext(path):
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise ValueError(f"'{path}': unsupported weight file extension '{ext}' (expected one of {EXTENSIONS})")
    return ext


def _finish(state, fp32, path):
    out = {}
    for name, value in state.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"'{path}': entry '{name}' is a {type(value).__name__}, not a tensor")
        if fp32 and value.dtype == np.float16:
            value = value.astype(np.float32)
        out[name] = value
    return out


def _torch_to_numpy(value):
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16
            value = value.float()
        return value.numpy()
    return value


def _is_tensor_dict(obj):
    import torch

    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _pick_state(obj, key, path):
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            keys = list(obj) if isinstance(obj, dict) else type(obj).__name__
            raise KeyError(f"'{path}': no entry '{key}' (top level: {keys})")
        obj = obj[key]
    elif isinstance(obj, dict) and not _is_tensor_dict(obj):
        found = next((k for k in CONTAINER_KEYS if isinstance(obj.get(k), (dict, ModuleStub))), None)
        if found is None:
            raise KeyError(f"'{path}': no state_dict found; top-level keys are {list(obj)}, "
                           f"expected tensors or one of {CONTAINER_KEYS}")
        obj = obj[found]
    if isinstance(obj, ModuleStub):
        obj = stub_state_dict(obj)
    if not isinstance(obj, dict):
        raise TypeError(f"'{path}': expected a state_dict, found {type(obj).__name__}")
    return obj


def _read_torch(path, key):
    state = _pick_state(torch_load_safe(path), key, path)
    return {k: _torch_to_numpy(v) for k, v in state.items()}


def _read_safetensors(path):
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    state = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw, shape = data[begin:end], tuple(info["shape"])
        if info["dtype"] == "BF16":  # upper half of a float32
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            state[name] = bits.view(np.float32).reshape(shape)
        elif info["dtype"] in _ST_DTYPES:
            state[name] = np.frombuffer(raw, dtype=_ST_DTYPES[info["dtype"]]).reshape(shape).copy()
        else:
            raise TypeError(f"'{path}': entry '{name}' has unsupported dtype {info['dtype']}")
    return state


def _read_ckpt(path):
    import mindspore as ms

    state = {}
    for name, param in ms.load_checkpoint(str(path)).items():
        if param.dtype == ms.bfloat16:
            param = param.astype(ms.float32)
        state[name] = param.asnumpy()
    return state


def read_weights(path, fp32=True, key=None):
    """Read a weight file into ``{name: np.ndarray}``.

    Args:
        path: .pt/.pth (a state_dict, ``{'model'|'state_dict'|'params'|'params_ema': ...}`` or a
            pickled whole ``nn.Module``), .safetensors, .ckpt (MindSpore) or .npz.
        fp32: convert float16 entries to float32 (bfloat16 always becomes float32).
        key: for torch pickles, the top-level entry holding the weights (default: searched).

    Raises:
        UnsafeCheckpointError: a torch pickle references a global outside the allow-list.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file '{path}' does not exist")
    ext = _ext(path)
    if ext in TORCH_EXTS:
        state = _read_torch(path, key)
    elif ext == ".safetensors":
        state = _read_safetensors(path)
    elif ext == ".ckpt":
        state = _read_ckpt(path)
    else:
        with np.load(path, allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
    return _finish(state, fp32, path)


def _write_tmp(tmp, ext, state):
    if ext in TORCH_EXTS:
        import torch

        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, tmp)
    elif ext == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, tmp)
    elif ext == ".ckpt":
        import mindspore as ms

        ms.save_checkpoint([{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in state.items()], tmp)
    else:
        with open(tmp, "wb") as f:
            np.savez(f, **state)


def write_weights(path, state):
    """Write ``{name: np.ndarray}`` to ``path`` in the format given by its extension, atomically."""
    path = str(path)
    ext = _ext(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Keep the real extension last: MindSpore appends '.ckpt' to names that lack it.
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp{ext}")
    try:
        _write_tmp(tmp, ext, {k: np.asarray(v) for k, v in state.items()})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
