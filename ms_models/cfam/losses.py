"""CFAM / IRRA objectives (MindSpore), each a function of framework tensors; the PyTorch twin is
``pt_reference.cfam.losses``.

- ``sdm_loss``: similarity distribution matching (IRRA): KL(p || q) with p = softmax(s / tau) and
  q the row-normalised same-identity matrix, summed over image->text and text->image.
- ``itc_loss``: symmetric InfoNCE with the paired item (diagonal) as target, averaged.
- ``id_loss``: (CE(image logits) + CE(text logits)) / 2.
- ``masked_lm_loss``: token cross-entropy ignoring label 0.
- ``hard_negatives``: in-batch hardest negative of the other modality by global similarity.
"""
import mindspore as ms
from mindspore import ops

EPS = 1e-8
PID_MASK = 1e4  # subtracted from same-identity similarities (cosine in [-1, 1]) when mining


def l2_normalize(x):
    """Rows divided by their Euclidean norm; (N, D) -> (N, D)."""
    return x / ops.norm(x, dim=-1, keepdim=True)


def same_identity(pids):
    """(B,) int -> (B, B) float32 with 1 where pid_i == pid_j."""
    p = pids.reshape(-1, 1)
    return (p == p.reshape(1, -1)).astype(ms.float32)


def sdm_loss(image_feats, text_feats, pids, logit_scale):
    """SDM of (B, D) image and text features; ``logit_scale`` = 1 / tau. Scalar."""
    labels = same_identity(pids)
    q = labels / labels.sum(axis=1, keepdims=True)
    t2i = ops.matmul(l2_normalize(text_feats), l2_normalize(image_feats).T) * logit_scale
    i2t = t2i.T
    log_q = ops.log(q + EPS)
    i2t_loss = (ops.softmax(i2t, axis=1) * (ops.log_softmax(i2t, axis=1) - log_q)).sum(axis=1).mean()
    t2i_loss = (ops.softmax(t2i, axis=1) * (ops.log_softmax(t2i, axis=1) - log_q)).sum(axis=1).mean()
    return i2t_loss + t2i_loss


def _ce(logits, targets):
    """Mean cross-entropy of (N, C) logits and (N,) int targets."""
    logp = ops.log_softmax(logits, axis=-1)
    onehot = ops.one_hot(targets.astype(ms.int32), logits.shape[-1], ops.ones((), logits.dtype),
                         ops.zeros((), logits.dtype))
    return -(onehot * logp).sum(axis=-1).mean()


def itc_loss(image_feats, text_feats, logit_scale):
    """Symmetric InfoNCE (CLIP) with targets 0..B-1. Scalar."""
    logits = ops.matmul(l2_normalize(image_feats), l2_normalize(text_feats).T) * logit_scale
    targets = ops.arange(logits.shape[0], dtype=ms.int32)
    return (_ce(logits, targets) + _ce(logits.T, targets)) / 2


def id_loss(image_logits, text_logits, pids):
    """(CE(image_logits, pids) + CE(text_logits, pids)) / 2 over (B, num_classes) logits. Scalar."""
    return (_ce(image_logits, pids) + _ce(text_logits, pids)) / 2


def masked_lm_loss(scores, labels):
    """Cross-entropy of (N, V) scores at positions with label > 0 (label 0 = ignore). Scalar."""
    keep = (labels > 0).astype(scores.dtype)
    logp = ops.log_softmax(scores, axis=-1)
    onehot = ops.one_hot(labels.astype(ms.int32), scores.shape[-1], ops.ones((), scores.dtype),
                         ops.zeros((), scores.dtype))
    nll = -(onehot * logp).sum(axis=-1)
    return (nll * keep).sum() / keep.sum()


def hard_negatives(image_feats, text_feats, pids):
    """Hardest in-batch negatives by global cosine similarity (no gradient).

    Returns ``(text_for_image (B,) int32, image_for_text (B,) int32)``: for image i the text of a
    different identity with the highest similarity, and for text j the image likewise (argmax, first
    index on ties). Needs at least two identities in the batch.
    """
    sim = ops.stop_gradient(ops.matmul(l2_normalize(image_feats), l2_normalize(text_feats).T))
    masked = sim - PID_MASK * same_identity(pids)
    return ops.argmax(masked, dim=1).astype(ms.int32), ops.argmax(masked, dim=0).astype(ms.int32)
