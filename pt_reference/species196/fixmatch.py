"""FixMatch loss (PyTorch twin of ``ms_models.species196.fixmatch``)."""
import torch
import torch.nn.functional as F


def fixmatch_loss(logits_x, targets_x, logits_weak, logits_strong, threshold=0.95, lambda_u=1.0, temperature=1.0):
    """``(total, supervised CE, unsupervised term, mask rate)``."""
    sup = F.cross_entropy(logits_x, targets_x.long())
    probs = torch.softmax(logits_weak.detach() / temperature, dim=-1)
    max_probs, pseudo = torch.max(probs, dim=-1)
    mask = max_probs.ge(threshold).to(logits_strong.dtype)
    unsup = (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
    return sup + lambda_u * unsup, sup, unsup, mask.mean()
