"""FGPS, fast global patch searching (MindSpore): for every reference patch token, the indices of the
k supporting-frame patches with the highest cosine similarity.

Backends (``backend``):
- ``exact``: the full N x M similarity and a stable descending sort (ties: lowest index first).
  O(N M); the reference the hashing backend is measured against.
- ``lsh``: angular LSH with random rotations drawn in numpy (``common.data.hdr_patches.lsh_rotations``,
  loaded identically into both frameworks). Per hash round, reference and supporting tokens are
  hashed together, sorted by (bucket, position), cut into chunks of ``chunk_size``, and every
  reference token is compared with the supporting tokens of its own and the two neighbouring chunks.
  The candidates of all rounds are de-duplicated and the top k kept. O(N log N + N * rounds * chunk).
- ``none``: no search; every reference patch gets its co-located supporting patch (k = 1). This is
  the window-only baseline.

Sorting is the only selection primitive (MindSpore's CPU sort and ``torch.sort(stable=True)`` are
both stable; ``topk`` orders ties differently in the two frameworks), so equal scores resolve to
the lowest candidate position in both. Descriptors carry no gradient: the indices are discrete.
"""
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from common.data.hdr_patches import lsh_rotations

BACKENDS = ("exact", "lsh", "none")
_INVALID = -10.0  # below any cosine similarity


def l2_normalize(x, eps=1e-6):
    """x / max(||x||, eps) over the last axis."""
    norm = ops.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / ops.maximum(norm, eps)


def stable_topk_indices(scores, k):
    """Positions of the k largest entries of the last axis, ties by lowest position: int32 (..., k)."""
    _, order = ops.sort(scores, axis=-1, descending=True)
    return order[..., :k].astype(ms.int32)


def batched_gather_rows(x, idx):
    """x (B, N, D), idx int (B, M) -> (B, M, D) with out[b, m] = x[b, idx[b, m]]."""
    b, n, d = x.shape
    offs = ops.reshape(ops.arange(b).astype(ms.int32) * n, (b, 1))
    flat = ops.reshape(idx.astype(ms.int32) + offs, (-1,))
    return ops.reshape(ops.gather(ops.reshape(x, (b * n, d)), flat, 0), (b, idx.shape[1], d))


def batched_gather_last(x, idx):
    """x (B, N, L), idx int (B, N, K) -> (B, N, K) with out[b, n, j] = x[b, n, idx[b, n, j]]."""
    return ops.gather_elements(x, 2, idx.astype(ms.int32))


class FGPS(nn.Cell):
    """Top-k patch search between a reference and a supporting descriptor set.

    Args:
        k: matches per reference token.
        backend: 'exact' | 'lsh' | 'none'.
        dim: descriptor length D (needed for the LSH rotations).
        n_hashes, n_buckets, chunk_size, seed: LSH settings (ignored by the other backends).

    Input ``query`` (B, N, D) and ``support`` (B, N, D) (same patch grid); output int32 (B, N, k)
    indices into the supporting tokens (k = 1 for 'none').
    """

    def __init__(self, k, backend="exact", dim=None, n_hashes=4, n_buckets=16, chunk_size=32, seed=0):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"fgps backend must be one of {BACKENDS}, got '{backend}'")
        if k < 1:
            raise ValueError(f"fgps k must be >= 1, got {k}")
        self.k, self.backend = int(k), backend
        self.chunk_size, self.n_hashes = int(chunk_size), int(n_hashes)
        if backend == "lsh":
            if not dim:
                raise ValueError("fgps backend 'lsh' needs the descriptor dim")
            self.rotations = Parameter(Tensor(lsh_rotations(seed, n_hashes, dim, n_buckets)), name="rotations",
                                       requires_grad=False)

    def construct(self, query, support):
        b, n = query.shape[0], query.shape[1]
        if self.backend == "none":
            return ops.broadcast_to(ops.reshape(ops.arange(n).astype(ms.int32), (1, n, 1)), (b, n, 1))
        q = l2_normalize(ops.stop_gradient(query).astype(ms.float32))
        s = l2_normalize(ops.stop_gradient(support).astype(ms.float32))
        if self.backend == "exact":
            sim = ops.matmul(q, ops.transpose(s, (0, 2, 1)))
            return stable_topk_indices(sim, self.k)
        return self._lsh(q, s)

    def _lsh(self, q, s):
        b, n, d = q.shape
        c = self.chunk_size
        total = 2 * n
        if total % c:
            raise ValueError(f"fgps lsh: 2 * tokens ({total}) must be a multiple of chunk_size ({c})")
        nc = total // c
        u = ops.concat((q, s), 1)                                             # (B, 2N, D)
        pos = ops.broadcast_to(ops.reshape(ops.arange(total).astype(ms.int32), (1, total)), (b, total))
        is_sup = (pos >= n).astype(ms.float32)
        sup_idx = (pos - n).astype(ms.float32)
        own = ops.broadcast_to(ops.reshape(ops.arange(n).astype(ms.int32), (1, n, 1)), (b, n, 3 * c))
        scores, cands = [], []
        for h in range(self.n_hashes):
            proj = ops.matmul(u, self.rotations[h])
            bucket = ops.argmax(ops.concat((proj, -proj), -1), -1).astype(ms.float32)
            key = bucket * total + pos.astype(ms.float32)
            _, perm = ops.sort(key, axis=-1)
            perm = perm.astype(ms.int32)
            su = ops.reshape(batched_gather_rows(u, perm), (b, nc, c, d))
            flags = ops.reshape(batched_gather_rows(ops.stack((is_sup, sup_idx), -1), perm), (b, nc, c, 2))
            keys = ops.concat((_shift_chunks(su, 1), su, _shift_chunks(su, -1)), 2)          # (B, nc, 3c, D)
            kflags = ops.concat((_shift_chunks(flags, 1), flags, _shift_chunks(flags, -1)), 2)
            sc = ops.matmul(su, ops.transpose(keys, (0, 1, 3, 2)))                           # (B, nc, c, 3c)
            valid = kflags[:, :, None, :, 0] > 0.5
            sc = ops.select(ops.broadcast_to(valid, sc.shape), sc, ops.full_like(sc, _INVALID))
            ci = ops.broadcast_to(kflags[:, :, None, :, 1], sc.shape)
            sc = ops.reshape(sc, (b, total, 3 * c))
            ci = ops.reshape(ci, (b, total, 3 * c))
            _, inv = ops.sort(perm.astype(ms.float32), axis=-1)
            sc = batched_gather_rows(sc, inv)[:, :n]
            ci = batched_gather_rows(ci, inv)[:, :n].astype(ms.int32)
            ci = ops.select(sc > _INVALID, ci, own)
            scores.append(sc)
            cands.append(ci)
        sc, ci = ops.concat(scores, -1), ops.concat(cands, -1)
        # by candidate index, valid before invalid, so a duplicate never hides a valid score
        _, by_index = ops.sort(ci.astype(ms.float32) * 2 + (sc <= _INVALID).astype(ms.float32), axis=-1)
        by_index = by_index.astype(ms.int32)
        ci = batched_gather_last(ci, by_index)
        sc = batched_gather_last(sc, by_index)
        dup = ops.concat((ops.zeros_like(ci[..., :1]).astype(ms.bool_), ci[..., 1:] == ci[..., :-1]), -1)
        sc = ops.select(dup, ops.full_like(sc, _INVALID), sc)
        return batched_gather_last(ci, stable_topk_indices(sc, self.k))


def _shift_chunks(x, step):
    """Chunk axis 1 moved by ``step`` (+1: the previous chunk, -1: the next), zero-filled at the ends."""
    pad = ops.zeros_like(x[:, :1])
    if step > 0:
        return ops.concat((pad, x[:, :-1]), 1)
    return ops.concat((x[:, 1:], pad), 1)
