"""Adversarial rank loss of RPG (official ``image_classification/rank_kit.py``; twin of
``pt_reference/rpg/rank_loss.py``), traceable in GRAPH mode (static shapes: the rank-k
approximation keeps the first k singular values through a 0/1 mask instead of slicing).

For a conv weight W (C_out, C_in, kh, kw): M = W.reshape(C_out, -1), M^ = M / ||M||_F, SVD of the
detached M^ (``ops.svd`` returns (s, u, v) with v of shape (P, n), not transposed), k from the
energy tail (``find_k``), M^_k = U_k S_k V_k^T held constant, L = -||M^ - M^_k||_F^2 with the
gradient through the normalisation. Layers with ||M|| = 0 or sparsity below ``sparsity_thres``
contribute 0; the loss is averaged over the layers whose loss is non-zero.
"""
import mindspore as ms
from mindspore import ops


def find_k(s2, partial_k):
    """int32 k in [0, n-1] minimising |sum_{i>k} s2_i - partial_k| (s2 descending); ties go to the
    larger k (the first minimum of the reversed cumulative sum, found without relying on argmin's
    tie order)."""
    n = s2.shape[0]
    tail = ops.cumsum(ops.flip(s2, (0,)), 0)
    gap = ops.abs(tail - partial_k)
    idx = ops.arange(n, dtype=ms.int32)
    j = ops.where(gap == gap.min(), idx, ops.full_like(idx, n)).min()
    return n - 1 - j


def layer_rank_loss(weight, partial_k, sparsity_thres=0.0):
    """``(loss, k)`` of one weight as 0-d tensors (loss 0 and k 0 for a skipped layer)."""
    mat = weight.reshape(weight.shape[0], -1).astype(ms.float32)
    sumsq = (mat * mat).sum()
    nonzero = sumsq > 0
    # sqrt of a guarded value: sqrt'(0) is infinite and would turn the zero layer's gradient into NaN
    norm = ops.sqrt(ops.where(nonzero, sumsq, ops.ones_like(sumsq)))
    normed = mat / norm
    s, u, v = ops.svd(ops.stop_gradient(normed), full_matrices=False)
    k = find_k(s * s, partial_k)
    keep = (ops.arange(s.shape[0], dtype=ms.int32) < k).astype(s.dtype)
    approx = ops.stop_gradient(ops.matmul(u * (s * keep), v.T))
    loss = -((normed - approx) ** 2).sum()
    sparsity = (weight == 0).astype(ms.float32).mean()
    use = ops.logical_and(nonzero, sparsity >= sparsity_thres)
    return ops.where(use, loss, ops.zeros_like(loss)), ops.where(use, k, ops.zeros_like(k))


def rank_loss(weights, partial_k, sparsity_thres=0.0):
    """``(mean loss over layers with a non-zero loss, ks int32 [layers])`` for the conv ``weights``."""
    losses, ks = [], []
    for w in weights:
        loss, k = layer_rank_loss(w, partial_k, sparsity_thres)
        losses.append(loss)
        ks.append(k)
    losses = ops.stack(losses)
    active = (losses != 0).astype(ms.float32).sum()
    return losses.sum() / ops.maximum(active, 1.0), ops.stack(ks)
