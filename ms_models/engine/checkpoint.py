"""Training checkpoints in MindSpore ``.ckpt`` format, written atomically.

One file holds every array under a prefix: ``model.<name>`` (live weights and BN statistics),
``ema.<name>`` (EMA weights, the ones evaluated and exported), ``optim.<name>`` (momentum / Adam
moments and step count), ``loss_scale.*``, and ``meta.json`` (the JSON metadata as uint8 bytes:
step, epoch, RNG states). The trainer also writes the metadata beside it as ``<stem>.json`` for
people and tools. Values are numpy arrays: ``ms.save_checkpoint`` crashes on a dict of plain
Tensors.
"""
import json
from pathlib import Path

import numpy as np
import mindspore as ms
from mindspore import Tensor, ops

from common.atomic import atomic_path

META_KEY = "meta.json"
_PREFIXES = ("model.", "ema.", "optim.", "loss_scale.")


def save_state(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) plus ``meta`` (JSON-able) to ``path`` atomically.

    The data goes to a temp file in the same folder, then ``os.replace``; an exception during the
    write leaves the previous file untouched and no temp file behind.
    """
    obj = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in arrays.items()}  # 0-d stays 0-d
    obj[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8).copy()
    with atomic_path(path) as tmp:
        ms.save_checkpoint(obj, str(tmp))


def load_state(path):
    """``(arrays, meta)`` from a file written by ``save_state`` (meta is {} for plain weight files;
    other formats, .npz/.safetensors/.pt, are read by ``common.weights.read_weights``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix.lower() != ".ckpt":
        from common.weights import read_weights
        return read_weights(path), {}
    raw = ms.load_checkpoint(str(path))
    arrays = {k: v.asnumpy() for k, v in raw.items() if k != META_KEY}
    meta = json.loads(raw[META_KEY].asnumpy().tobytes().decode("utf-8")) if META_KEY in raw else {}
    return arrays, meta


def read_eval_weights(path, prefer_ema=True):
    """``{param_name: ndarray}`` to evaluate or export: the EMA weights if present (and
    ``prefer_ema``), else the live model weights; a plain weight file is returned as it is."""
    arrays, _ = load_state(path)
    for prefix in (("ema.", "model.") if prefer_ema else ("model.",)):
        sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if sub:
            if prefix == "ema.":
                live = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
                sub = {**live, **sub}
            return sub
    if any(k.startswith(_PREFIXES) for k in arrays):
        raise ValueError(f"{path}: training checkpoint without model weights")
    return arrays


def assign_arrays(params, arrays, prefix, path):
    """``ops.assign`` ``arrays[prefix + p.name]`` into each Parameter; errors list every missing or
    mis-shaped key."""
    missing, bad = [], []
    for p in params:
        key = prefix + p.name
        if key not in arrays:
            missing.append(key)
        elif tuple(arrays[key].shape) != tuple(p.shape):
            bad.append(f"{key}: checkpoint {tuple(arrays[key].shape)} vs model {tuple(p.shape)}")
    if missing or bad:
        raise ValueError(f"{path}: cannot restore '{prefix}*': missing {missing or 'none'}; "
                         f"mis-shaped {bad or 'none'}")
    for p in params:
        ops.assign(p, Tensor(np.asarray(arrays[prefix + p.name]), dtype=p.dtype))
