"""FixMatch loss (Sohn et al. 2020) in MindSpore; twin: ``pt_reference.species196.fixmatch``.

    L = CE(logits_x, y) + lambda_u * mean_b[ 1(max_c q_b >= tau) * CE(logits_strong_b, argmax_c q_b) ],
    q = softmax(stop_gradient(logits_weak) / T)

Ties in the argmax go to the lowest class index (both frameworks).
"""
import mindspore as ms
from mindspore import ops


def fixmatch_loss(logits_x, targets_x, logits_weak, logits_strong, threshold=0.95, lambda_u=1.0, temperature=1.0):
    """``(total, supervised CE, unsupervised term, mask rate)``, scalars.

    ``targets_x`` int32 (B,); the unsupervised term averages over all mu*B unlabeled samples
    (masked ones contribute 0), as in the official code.
    """
    sup = ops.cross_entropy(logits_x, targets_x.astype(ms.int32))
    probs = ops.softmax(ops.stop_gradient(logits_weak) / temperature, axis=-1)
    max_probs = probs.max(axis=-1)
    pseudo = ops.argmax(probs, dim=-1).astype(ms.int32)
    mask = (max_probs >= threshold).astype(logits_strong.dtype)
    per_sample = ops.cross_entropy(logits_strong, pseudo, reduction="none")
    unsup = (per_sample * mask).mean()
    return sup + lambda_u * unsup, sup, unsup, mask.mean()
