"""FGPS, fast global patch searching (PyTorch twin of ``ms_models.ift.fgps``; see its docstring for
the backends). Selection is a stable descending sort in both trees (ties: lowest position first)."""
import torch
import torch.nn as nn

from common.data.hdr_patches import lsh_rotations

BACKENDS = ("exact", "lsh", "none")
_INVALID = -10.0


def l2_normalize(x, eps=1e-6):
    return x / torch.clamp(torch.sqrt((x * x).sum(-1, keepdim=True)), min=eps)


def stable_topk_indices(scores, k):
    return torch.sort(scores, dim=-1, descending=True, stable=True)[1][..., :k]


def batched_gather_rows(x, idx):
    """x (B, N, D), idx (B, M) -> (B, M, D)."""
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))


def _shift_chunks(x, step):
    pad = torch.zeros_like(x[:, :1])
    return torch.cat((pad, x[:, :-1]), 1) if step > 0 else torch.cat((x[:, 1:], pad), 1)


class FGPS(nn.Module):
    """Top-k patch search: ``query`` (B, N, D), ``support`` (B, N, D) -> int64 (B, N, k)."""

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
            self.register_buffer("rotations", torch.from_numpy(lsh_rotations(seed, n_hashes, dim, n_buckets)))

    def forward(self, query, support):
        b, n = query.shape[0], query.shape[1]
        if self.backend == "none":
            return torch.arange(n, device=query.device).reshape(1, n, 1).expand(b, n, 1)
        q = l2_normalize(query.detach().float())
        s = l2_normalize(support.detach().float())
        if self.backend == "exact":
            return stable_topk_indices(q @ s.transpose(1, 2), self.k)
        return self._lsh(q, s)

    def _lsh(self, q, s):
        b, n, d = q.shape
        c = self.chunk_size
        total = 2 * n
        if total % c:
            raise ValueError(f"fgps lsh: 2 * tokens ({total}) must be a multiple of chunk_size ({c})")
        nc = total // c
        u = torch.cat((q, s), 1)
        pos = torch.arange(total, device=q.device).reshape(1, total).expand(b, total)
        is_sup = (pos >= n).float()
        sup_idx = (pos - n).float()
        own = torch.arange(n, device=q.device).reshape(1, n, 1).expand(b, n, 3 * c)
        scores, cands = [], []
        for h in range(self.n_hashes):
            proj = u @ self.rotations[h]
            bucket = torch.argmax(torch.cat((proj, -proj), -1), -1).float()
            perm = torch.sort(bucket * total + pos.float(), dim=-1, stable=True)[1]
            su = batched_gather_rows(u, perm).reshape(b, nc, c, d)
            flags = batched_gather_rows(torch.stack((is_sup, sup_idx), -1), perm).reshape(b, nc, c, 2)
            keys = torch.cat((_shift_chunks(su, 1), su, _shift_chunks(su, -1)), 2)
            kflags = torch.cat((_shift_chunks(flags, 1), flags, _shift_chunks(flags, -1)), 2)
            sc = su @ keys.transpose(2, 3)
            valid = kflags[:, :, None, :, 0] > 0.5
            sc = torch.where(valid.expand_as(sc), sc, torch.full_like(sc, _INVALID))
            ci = kflags[:, :, None, :, 1].expand_as(sc)
            sc = sc.reshape(b, total, 3 * c)
            ci = ci.reshape(b, total, 3 * c)
            inv = torch.sort(perm.float(), dim=-1, stable=True)[1]
            sc = batched_gather_rows(sc, inv)[:, :n]
            ci = batched_gather_rows(ci, inv)[:, :n].long()
            ci = torch.where(sc > _INVALID, ci, own)
            scores.append(sc)
            cands.append(ci)
        sc, ci = torch.cat(scores, -1), torch.cat(cands, -1)
        by_index = torch.sort(ci.float() * 2 + (sc <= _INVALID).float(), dim=-1, stable=True)[1]
        ci = torch.gather(ci, 2, by_index)
        sc = torch.gather(sc, 2, by_index)
        dup = torch.cat((torch.zeros_like(ci[..., :1], dtype=torch.bool), ci[..., 1:] == ci[..., :-1]), -1)
        sc = torch.where(dup, torch.full_like(sc, _INVALID), sc)
        return torch.gather(ci, 2, stable_topk_indices(sc, self.k))
