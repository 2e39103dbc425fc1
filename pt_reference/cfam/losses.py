"""CFAM / IRRA objectives (PyTorch reference); see ``ms_models.cfam.losses`` for the definitions."""
import torch
import torch.nn.functional as F

EPS = 1e-8
PID_MASK = 1e4


def l2_normalize(x):
    """Rows divided by their Euclidean norm; (N, D) -> (N, D)."""
    return x / x.norm(dim=-1, keepdim=True)


def same_identity(pids):
    """(B,) int -> (B, B) float32 with 1 where pid_i == pid_j."""
    p = pids.reshape(-1, 1)
    return (p == p.reshape(1, -1)).float()


def sdm_loss(image_feats, text_feats, pids, logit_scale):
    """SDM (IRRA) with an explicit row normalisation of the identity matrix. Scalar."""
    labels = same_identity(pids)
    q = labels / labels.sum(dim=1, keepdim=True)
    t2i = l2_normalize(text_feats) @ l2_normalize(image_feats).t() * logit_scale
    i2t = t2i.t()
    log_q = torch.log(q + EPS)
    i2t_loss = (F.softmax(i2t, dim=1) * (F.log_softmax(i2t, dim=1) - log_q)).sum(dim=1).mean()
    t2i_loss = (F.softmax(t2i, dim=1) * (F.log_softmax(t2i, dim=1) - log_q)).sum(dim=1).mean()
    return i2t_loss + t2i_loss


def _ce(logits, targets):
    return F.cross_entropy(logits, targets.long())


def itc_loss(image_feats, text_feats, logit_scale):
    """Symmetric InfoNCE (CLIP) with targets 0..B-1. Scalar."""
    logits = l2_normalize(image_feats) @ l2_normalize(text_feats).t() * logit_scale
    targets = torch.arange(logits.shape[0])
    return (_ce(logits, targets) + _ce(logits.t(), targets)) / 2


def id_loss(image_logits, text_logits, pids):
    """(CE(image_logits, pids) + CE(text_logits, pids)) / 2. Scalar."""
    return (_ce(image_logits, pids) + _ce(text_logits, pids)) / 2


def masked_lm_loss(scores, labels):
    """Cross-entropy of (N, V) scores ignoring label 0. Scalar."""
    return F.cross_entropy(scores, labels.long(), ignore_index=0)


@torch.no_grad()
def hard_negatives(image_feats, text_feats, pids):
    """``(text_for_image (B,), image_for_text (B,))`` hardest other-identity items by cosine similarity."""
    sim = l2_normalize(image_feats) @ l2_normalize(text_feats).t()
    masked = sim - PID_MASK * same_identity(pids)
    return masked.argmax(dim=1), masked.argmax(dim=0)
