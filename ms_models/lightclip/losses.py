"""LightCLIP objectives (MindSpore), twins of ``pt_reference.lightclip.losses`` (spec section 3).

- ``soft_infonce_loss``: instance-level InfoNCE with progressively softened negative labels. Targets
  y_ii = 1 - alpha, the off-diagonal mass alpha spread ``uniform`` (alpha / (N-1)) or by
  ``similarity`` (softmax over j != i of stop-grad(s_ij) / tau'); L = (CE(I->T) + CE(T->I)) / 2.
- ``token_alignment_loss``: token-level alignment through a fixed one-hot (B, L, M) matching mask
  (``common.lightclip_ops.token_matching``); ``cos``: mean over matched pairs of 1 - s_lm;
  ``nce``: mean over matched words of -log softmax_m(s_l. / tau)[matched m].
- ``mlm_loss``: cross-entropy over positions with a label > 0.
Every function is traceable in GRAPH mode (static shapes, no branching on tensor values).
"""
import mindspore as ms
from mindspore import ops

SOFT_LABEL_MODES = ("uniform", "similarity")
TOKEN_LOSSES = ("cos", "nce")
NEG_INF = -1e9


def l2_normalize(x):
    """x / ||x|| over the last axis."""
    return x / ops.norm(x, dim=-1, keepdim=True)


def soft_targets(sim, alpha, mode="uniform", temperature=0.1):
    """(N, N) targets from cosine similarities ``sim`` (rows: queries), ``alpha`` a scalar tensor."""
    n = sim.shape[0]
    eye = ops.eye(n, n, sim.dtype)
    if mode == "uniform":
        off = (1.0 - eye) / float(max(n - 1, 1))
    else:
        off = ops.softmax(ops.stop_gradient(sim) / temperature + eye * NEG_INF, axis=-1)
    return (1.0 - alpha) * eye + alpha * off


def soft_cross_entropy(logits, targets):
    """mean_i -sum_j targets_ij log softmax(logits)_ij."""
    return -(targets * ops.log_softmax(logits, axis=-1)).sum(-1).mean()


def soft_infonce_loss(img, txt, logit_scale, alpha, mode="uniform", temperature=0.1):
    """Symmetric soft-label InfoNCE.

    Args:
        img, txt: (N, D) global embeddings (normalised here); row i of both is a positive pair.
        logit_scale: scalar tensor, the multiplier of the cosine similarities (already exp/clamped).
        alpha: scalar tensor, the softening alpha(t) of ``common.lightclip_ops.soft_label_alpha``.
        mode: ``uniform`` | ``similarity``; temperature: tau' of the similarity-aware spreading.
    """
    sim = ops.matmul(l2_normalize(img), l2_normalize(txt).T)
    logits = logit_scale * sim
    i2t = soft_cross_entropy(logits, soft_targets(sim, alpha, mode, temperature))
    t2i = soft_cross_entropy(logits.T, soft_targets(sim.T, alpha, mode, temperature))
    return 0.5 * (i2t + t2i)


def token_similarity(words, patches):
    """(B, L, D), (B, M, D) -> (B, L, M) cosine similarities."""
    return ops.bmm(l2_normalize(words), l2_normalize(patches).swapaxes(1, 2))


def token_alignment_loss(words, patches, match, mode="cos", temperature=0.1):
    """Loss of the matched (word, patch) pairs; ``match`` float (B, L, M) one-hot rows (0 rows: unmatched)."""
    sim = token_similarity(words, patches)
    count = ops.maximum(match.sum(), 1.0)
    if mode == "cos":
        return (match * (1.0 - sim)).sum() / count
    return -(match * ops.log_softmax(sim / temperature, axis=-1)).sum() / count


def mlm_loss(logits, labels):
    """Masked-token cross-entropy: logits (B, L, V), labels int (B, L) with 0 = not a target."""
    logp = ops.log_softmax(logits, axis=-1)
    picked = ops.gather_elements(logp, 2, labels.astype(ms.int32).expand_dims(-1)).squeeze(-1)
    sel = (labels > 0).astype(logits.dtype)
    return -(picked * sel).sum() / ops.maximum(sel.sum(), 1.0)
