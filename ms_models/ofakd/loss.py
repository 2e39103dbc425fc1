"""OFA loss (adaptive target enhancement) and vanilla KD, MindSpore.

``ofa_loss`` follows Hao840/OFAKD ``distillers/ofa.py``: with p_s = softmax(z_s / T),
p_t = softmax(z_t / T) and the one-hot target y,

    L = mean_b [ -sum_c ((p_t + y)^eps - y)_c * log(p_s)_c ]

computed as ``log(softmax)`` (``log_impl='faithful'``) or ``log_softmax`` (``'log_softmax'``); no T^2.
"""
import mindspore as ms
from mindspore import ops

LOG_IMPLS = ("faithful", "log_softmax")


def target_mask(targets, num_classes):
    """One-hot float32 (B, K) of class indices (B,) or of the argmax of soft targets (B, K)."""
    idx = targets.argmax(-1) if targets.ndim == 2 else targets
    return ops.one_hot(idx.astype(ms.int32), num_classes, ms.Tensor(1.0, ms.float32), ms.Tensor(0.0, ms.float32))


def ofa_loss(logits_student, logits_teacher, mask, eps, temperature=1.0, log_impl="faithful"):
    """Scalar OFA loss; ``mask`` is the one-hot target (B, K), ``eps`` the exponent (float)."""
    z_s = logits_student / temperature
    p_t = ops.softmax(logits_teacher / temperature, axis=1)
    log_p_s = ops.log(ops.softmax(z_s, axis=1)) if log_impl == "faithful" else ops.log_softmax(z_s, axis=1)
    weight = ops.pow(p_t + mask, eps) - mask
    return (-(weight * log_p_s).sum(axis=-1)).mean()


def kd_loss(logits_student, logits_teacher, temperature=1.0):
    """Vanilla KD (Hinton): T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), summed over classes, batch mean."""
    log_p_s = ops.log_softmax(logits_student / temperature, axis=1)
    p_t = ops.softmax(logits_teacher / temperature, axis=1)
    log_p_t = ops.log_softmax(logits_teacher / temperature, axis=1)
    return (p_t * (log_p_t - log_p_s)).sum(axis=1).mean() * (temperature ** 2)


def soft_target_cross_entropy(logits, targets):
    """Mean over the batch of ``-sum_k targets[:, k] * log_softmax(logits)[:, k]``."""
    return (-(targets * ops.log_softmax(logits, axis=-1)).sum(axis=-1)).mean()


def cross_entropy(logits, targets):
    """timm's train criterion: soft-target CE for (B, K) float targets, else CE on class indices."""
    if targets.ndim == 2:
        return soft_target_cross_entropy(logits, targets)
    return ops.cross_entropy(logits, targets.astype(ms.int32))
