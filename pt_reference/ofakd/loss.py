"""OFA loss and vanilla KD, PyTorch twin of ``ms_models.ofakd.loss`` (official ``ofa_loss`` semantics)."""
import torch
import torch.nn.functional as F

LOG_IMPLS = ("faithful", "log_softmax")


def target_mask(targets, num_classes):
    """One-hot float32 (B, K) of class indices (B,) or of the argmax of soft targets (B, K)."""
    idx = targets.argmax(-1) if targets.ndim == 2 else targets
    return F.one_hot(idx.long(), num_classes).float()


def ofa_loss(logits_student, logits_teacher, mask, eps, temperature=1.0, log_impl="faithful"):
    """mean_b [ -sum_c ((p_t + y)^eps - y)_c * log(p_s)_c ], p = softmax(z / T); no T^2."""
    z_s = logits_student / temperature
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    log_p_s = torch.log(F.softmax(z_s, dim=1)) if log_impl == "faithful" else F.log_softmax(z_s, dim=1)
    weight = (p_t + mask) ** eps - mask
    return torch.sum(-weight * log_p_s, dim=-1).mean()


def kd_loss(logits_student, logits_teacher, temperature=1.0):
    """Vanilla KD: T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), batch mean (official ``kd_loss``)."""
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature ** 2


def cross_entropy(logits, targets):
    """Soft-target CE for (B, K) float targets, else CE on class indices."""
    if targets.ndim == 2:
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, targets.long())
