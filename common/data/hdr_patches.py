"""Patch bookkeeping shared by both IFT trees (numpy only): the LSH rotations of FGPS, the Swin
relative-position index, and a numpy patch splitter used by tests and the demo.

The random rotations of the hashing backend are drawn here, once, from a fixed numpy seed; both
frameworks load the same array, so hashing (and therefore the candidate sets) is identical.
"""
import numpy as np


def lsh_rotations(seed, n_hashes, dim, n_buckets):
    """Random rotations for angular LSH (Reformer): float32 (n_hashes, dim, n_buckets // 2).

    A token ``x`` (unit norm) falls in bucket ``argmax([x R_h, -x R_h])`` of hash round ``h``.
    """
    if n_buckets < 2 or n_buckets % 2:
        raise ValueError(f"lsh n_buckets must be an even number >= 2, got {n_buckets}")
    if n_hashes < 1 or dim < 1:
        raise ValueError(f"lsh n_hashes and descriptor dim must be >= 1, got {n_hashes} and {dim}")
    rng = np.random.default_rng(int(seed))
    return rng.standard_normal((n_hashes, dim, n_buckets // 2)).astype(np.float32)


def relative_position_index(window_size):
    """Swin relative-position index of a ``window_size`` x ``window_size`` window: int32 (w*w, w*w)
    into a table of (2w-1)^2 entries."""
    w = int(window_size)
    coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
    return (rel[:, :, 0] * (2 * w - 1) + rel[:, :, 1]).astype(np.int32)


def patchify(x, p):
    """(C, H, W) -> (N, p*p, C) patches in raster order (N = H/p * W/p)."""
    c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not a multiple of the patch size {p}")
    x = x.reshape(c, h // p, p, w // p, p).transpose(1, 3, 2, 4, 0)
    return x.reshape((h // p) * (w // p), p * p, c)
