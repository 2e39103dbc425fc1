"""Adversarial rank loss of RPG (official ``image_classification/rank_kit.py``; twin of
``ms_models/rpg/rank_loss.py``).

For a conv weight W (C_out, C_in, kh, kw): M = W.reshape(C_out, -1), M^ = M / ||M||_F, SVD of the
detached M^ = U S V^T, k from the energy tail (``find_k``), M^_k = U_k S_k V_k^T held constant and
L = -||M^ - M^_k||_F^2 (gradient through the normalisation). Layers with ||M|| = 0 or sparsity
below ``sparsity_thres`` contribute nothing; the loss is averaged over the layers whose loss is
non-zero.
"""
import torch


def find_k(s2, partial_k):
    """k in [0, n-1] minimising |sum_{i>k} s2_i - partial_k| (s2 descending, 1-indexed tail);
    ties go to the larger k (first minimum of the reversed cumulative sum)."""
    tail = torch.cumsum(torch.flip(s2, dims=[0]), dim=0)
    j = int(torch.argmin(torch.abs(tail - partial_k)))  # torch returns the first minimal index
    return s2.shape[0] - j - 1


def layer_rank_loss(weight, partial_k):
    """``(loss, k)`` of one weight; ``loss`` is a 0-d tensor (0 for a zero weight), ``k`` an int."""
    mat = weight.reshape(weight.shape[0], -1)
    norm = torch.linalg.norm(mat)
    if float(norm.detach()) == 0.0:
        return mat.sum() * 0.0, 0
    normed = mat / norm
    u, s, vh = torch.linalg.svd(normed.detach(), full_matrices=False)
    k = find_k(s * s, partial_k)
    approx = (u[:, :k] * s[:k]) @ vh[:k]
    return -((normed - approx) ** 2).sum(), k


def rank_loss(weights, partial_k, sparsity_thres=0.0):
    """``(mean loss over active layers, ks)`` for the conv weights ``weights``; ``ks`` lists k per
    layer (0 for a layer that is skipped)."""
    total, active, ks = 0.0, 0, []
    for w in weights:
        sparsity = float((w == 0).sum()) / w.numel()
        if sparsity < sparsity_thres:
            ks.append(0)
            continue
        loss, k = layer_rank_loss(w, partial_k)
        ks.append(k)
        if float(loss.detach()) != 0.0:
            total = total + loss
            active += 1
    if active == 0:
        return torch.zeros((), dtype=weights[0].dtype), ks
    return total / active, ks
