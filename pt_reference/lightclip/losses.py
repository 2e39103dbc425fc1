"""LightCLIP objectives (PyTorch reference), twins of ``ms_models.lightclip.losses`` (see there)."""
import torch
import torch.nn.functional as F

SOFT_LABEL_MODES = ("uniform", "similarity")
TOKEN_LOSSES = ("cos", "nce")
NEG_INF = -1e9


def l2_normalize(x):
    """x / ||x|| over the last axis."""
    return x / x.norm(dim=-1, keepdim=True)


def soft_targets(sim, alpha, mode="uniform", temperature=0.1):
    """(N, N) targets from cosine similarities ``sim`` (rows: queries)."""
    n = sim.shape[0]
    eye = torch.eye(n, dtype=sim.dtype)
    if mode == "uniform":
        off = (1.0 - eye) / float(max(n - 1, 1))
    else:
        off = torch.softmax(sim.detach() / temperature + eye * NEG_INF, dim=-1)
    return (1.0 - alpha) * eye + alpha * off


def soft_cross_entropy(logits, targets):
    """mean_i -sum_j targets_ij log softmax(logits)_ij."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def soft_infonce_loss(img, txt, logit_scale, alpha, mode="uniform", temperature=0.1):
    """Symmetric soft-label InfoNCE (arguments as in the MindSpore twin)."""
    sim = l2_normalize(img) @ l2_normalize(txt).t()
    logits = logit_scale * sim
    i2t = soft_cross_entropy(logits, soft_targets(sim, alpha, mode, temperature))
    t2i = soft_cross_entropy(logits.t(), soft_targets(sim.t(), alpha, mode, temperature))
    return 0.5 * (i2t + t2i)


def token_similarity(words, patches):
    """(B, L, D), (B, M, D) -> (B, L, M) cosine similarities."""
    return torch.bmm(l2_normalize(words), l2_normalize(patches).transpose(1, 2))


def token_alignment_loss(words, patches, match, mode="cos", temperature=0.1):
    """Loss of the matched (word, patch) pairs; ``match`` float (B, L, M) one-hot rows."""
    sim = token_similarity(words, patches)
    count = match.sum().clamp(min=1.0)
    if mode == "cos":
        return (match * (1.0 - sim)).sum() / count
    return -(match * F.log_softmax(sim / temperature, dim=-1)).sum() / count


def mlm_loss(logits, labels):
    """Masked-token cross-entropy: logits (B, L, V), labels int (B, L) with 0 = not a target."""
    logp = F.log_softmax(logits, dim=-1)
    picked = logp.gather(2, labels.long().unsqueeze(-1)).squeeze(-1)
    sel = (labels > 0).to(logits.dtype)
    return -(picked * sel).sum() / sel.sum().clamp(min=1.0)
