"""Super-resolution checkpoints: BasicSR files (weights under ``params``) and the original RCAN
release (``RCAN_BIX{s}.pt``, EDSR-PyTorch names), mapped to the BasicSR names both trees use.

RCAN original -> BasicSR (the mapping of DUKD's ``pretrained_models/RCAN/rcan_ckpt_conversion.py``):

    head.0                                 conv_first
    body.{g}.body.{b}.body.{0,2}           body.{g}.residual_group.{b}.rcab.{0,2}
    body.{g}.body.{b}.body.3.conv_du.{0,2} body.{g}.residual_group.{b}.rcab.3.attention.{1,3}
    body.{g}.body.{n_block}                body.{g}.conv
    body.{n_group}                         conv_after_body
    tail.0.{k}                             upsample.{k}
    tail.1                                 conv_last
    sub_mean.*, add_mean.*                 dropped (fixed mean-shift convs; BasicSR uses a constant)
"""
import re
from pathlib import Path

from common.weights import read_weights

_RCAN_DROPPED = ("sub_mean.", "add_mean.")


def rcan_official_to_basicsr(state):
    """Rename an original-RCAN state dict to BasicSR RCAN names (see the module table).

    Raises KeyError naming every key that fits no rule.
    """
    groups = {int(m.group(1)) for k in state for m in [re.match(r"body\.(\d+)\.", k)] if m}
    n_group = max(g for g in groups if any(k.startswith(f"body.{g}.body.") for k in state)) + 1 if groups else 0
    blocks = {int(m.group(1)) for k in state for m in [re.match(r"body\.0\.body\.(\d+)\.", k)] if m}
    n_block = max(blocks) if blocks else 0      # the last index is the group's closing conv
    rules = (
        (r"head\.0\.(weight|bias)", lambda m: f"conv_first.{m[1]}"),
        (r"body\.(\d+)\.body\.(\d+)\.body\.([02])\.(weight|bias)",
         lambda m: f"body.{m[1]}.residual_group.{m[2]}.rcab.{m[3]}.{m[4]}"),
        (r"body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.([02])\.(weight|bias)",
         lambda m: f"body.{m[1]}.residual_group.{m[2]}.rcab.3.attention.{int(m[3]) + 1}.{m[4]}"),
        (r"body\.(\d+)\.body\.(\d+)\.(weight|bias)",
         lambda m: f"body.{m[1]}.conv.{m[3]}" if int(m[2]) == n_block else None),
        (r"body\.(\d+)\.(weight|bias)", lambda m: f"conv_after_body.{m[2]}" if int(m[1]) == n_group else None),
        (r"tail\.0\.(\d+)\.(weight|bias)", lambda m: f"upsample.{m[1]}.{m[2]}"),
        (r"tail\.1\.(weight|bias)", lambda m: f"conv_last.{m[1]}"),
    )
    out, unknown = {}, []
    for key, value in state.items():
        if key.startswith(_RCAN_DROPPED):
            continue
        new = None
        for pattern, rename in rules:
            m = re.fullmatch(pattern, key)
            if m:
                new = rename(m)
                break
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise KeyError(f"rcan_official_to_basicsr: {len(unknown)} keys fit no RCAN rule: {', '.join(unknown[:8])}")
    return out


def read_sr_weights(path, param_key="params", source="basicsr"):
    """``(state, naming)``: the weights of ``path`` and whose names they carry ('pt' or 'ms').

    Args:
        path: BasicSR .pth/.pt (weights under ``param_key``), .safetensors/.npz with BasicSR
            names, or a MindSpore .ckpt written by this project.
        param_key: top-level entry of a torch checkpoint ('params' or 'params_ema').
        source: 'basicsr' or 'rcan_official' (the original RCAN release, renamed on reading).
    """
    if source not in ("basicsr", "rcan_official"):
        raise ValueError(f"weights source must be 'basicsr' or 'rcan_official', got {source!r}")
    ext = Path(path).suffix.lower()
    key = param_key if ext in (".pt", ".pth") and source == "basicsr" else None
    state = read_weights(path, key=key)
    if source == "rcan_official":
        state = rcan_official_to_basicsr(state)
    return state, ("ms" if ext == ".ckpt" else "pt")
