"""Training checkpoints as ``.pt`` files, written atomically and loadable with ``weights_only=True``.

Payload: ``{'model': state_dict, 'ema': {name: tensor} or None, 'optim': optimizer.state_dict(),
'scaler': GradScaler state or None, 'meta': JSON string}`` (step, epoch, RNG states in the JSON).
"""
import json
from pathlib import Path

import torch

from common.atomic import atomic_path


def save_state(path, payload, meta):
    """``torch.save`` of ``payload`` plus ``meta`` via a temp file in the same folder and
    ``os.replace``; an exception during the write leaves the previous file and no temp file."""
    with atomic_path(path) as tmp:
        torch.save({**payload, "meta": json.dumps(meta)}, tmp)


def load_state(path):
    """``(payload, meta)`` of a file written by ``save_state`` (plain state dicts give meta {})."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and isinstance(payload.get("meta"), str):
        return payload, json.loads(payload["meta"])
    return payload, {}


def read_eval_weights(path, prefer_ema=True):
    """``state_dict`` to evaluate or export: the EMA entries over the model's if present (and
    ``prefer_ema``), else the model's; a plain state dict is returned as it is."""
    payload, meta = load_state(path)
    if not meta:
        return payload
    state = dict(payload["model"])
    if prefer_ema and payload.get("ema"):
        state.update(payload["ema"])
    return state
