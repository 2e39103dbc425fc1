"""SCF, self-cross fusion (MindSpore): for every p x p reference patch, self-attention among its own
p^2 pixels, then cross-attention from those pixels to the k * p^2 pixels of the supporting patches
FGPS matched to it, then an MLP (pre-norm residual, like a transformer decoder layer).

Cost per image: N = HW / p^2 patches, each p^2 x p^2 (self) + p^2 x k p^2 (cross) scores, i.e.
O(HW * (1 + k) * p^2): linear in the image size for fixed p and k.
"""
import mindspore as ms
from mindspore import nn, ops

from ms_models.layers import Mlp, dense, layer_norm


def patchify(x, p):
    """(B, C, H, W) -> (B, N, p*p, C), patches in raster order."""
    b, c, h, w = x.shape
    x = ops.reshape(x, (b, c, h // p, p, w // p, p))
    return ops.reshape(ops.transpose(x, (0, 2, 4, 3, 5, 1)), (b, (h // p) * (w // p), p * p, c))


def unpatchify(x, p, h, w):
    """(B, N, p*p, C) -> (B, C, H, W)."""
    b, _, _, c = x.shape
    x = ops.reshape(x, (b, h // p, w // p, p, p, c))
    return ops.reshape(ops.transpose(x, (0, 5, 1, 3, 2, 4)), (b, c, h, w))


def gather_patches(x, idx):
    """x (B, N, P, C), idx int (B, N, k) -> (B, N, k * P, C): the matched patches of every token."""
    b, n, p2, c = x.shape
    k = idx.shape[-1]
    offs = ops.reshape(ops.arange(b).astype(ms.int32) * n, (b, 1, 1))
    flat = ops.reshape(idx.astype(ms.int32) + offs, (-1,))
    out = ops.gather(ops.reshape(x, (b * n, p2 * c)), flat, 0)
    return ops.reshape(out, (b, n, k * p2, c))


def _heads(x, h):
    """(B, L, C) -> (B, h, L, C / h)."""
    b, l, c = x.shape
    return ops.transpose(ops.reshape(x, (b, l, h, c // h)), (0, 2, 1, 3))


def _attend(q, k, v, scale):
    """Softmax(q k^T * scale) v over (B, h, Lq, d) x (B, h, Lk, d), softmax in float32 -> (B, Lq, h*d)."""
    attn = ops.softmax((ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * scale).astype(ms.float32), axis=-1)
    out = ops.matmul(attn.astype(v.dtype), v)
    b, h, l, d = out.shape
    return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (b, l, h * d))


class PatchSelfAttention(nn.Cell):
    """Multi-head self-attention over the p^2 pixels of each patch: (B', P, C) -> (B', P, C)."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.qkv = dense(dim, dim * 3)
        self.proj = dense(dim, dim)

    def construct(self, x):
        b, l, c = x.shape
        qkv = ops.transpose(ops.reshape(self.qkv(x), (b, l, 3, self.num_heads, c // self.num_heads)),
                            (2, 0, 3, 1, 4))
        return self.proj(_attend(qkv[0], qkv[1], qkv[2], self.scale))


class PatchCrossAttention(nn.Cell):
    """Multi-head attention from (B', P, C) reference pixels to (B', k P, C) matched pixels."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.q = dense(dim, dim)
        self.kv = dense(dim, dim * 2)
        self.proj = dense(dim, dim)

    def construct(self, x, mem):
        b, l, c = mem.shape
        kv = ops.transpose(ops.reshape(self.kv(mem), (b, l, 2, self.num_heads, c // self.num_heads)),
                           (2, 0, 3, 1, 4))
        return self.proj(_attend(_heads(self.q(x), self.num_heads), kv[0], kv[1], self.scale))


class SelfCrossFusion(nn.Cell):
    """Fuse a supporting frame into the reference over FGPS matches.

    Args:
        dim: feature channels C. num_heads: attention heads (C divisible by it).
        patch_size: p (H and W multiples of p). mlp_ratio: MLP hidden size / C.

    Inputs ``ref``, ``sup`` (B, C, H, W) and ``idx`` int (B, N, k); output (B, C, H, W).
    """

    def __init__(self, dim, num_heads, patch_size, mlp_ratio=2.0):
        super().__init__()
        self.patch_size = patch_size
        self.norm1 = layer_norm(dim, 1e-5)
        self.self_attn = PatchSelfAttention(dim, num_heads)
        self.norm2 = layer_norm(dim, 1e-5)
        self.norm_kv = layer_norm(dim, 1e-5)
        self.cross_attn = PatchCrossAttention(dim, num_heads)
        self.norm3 = layer_norm(dim, 1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def construct(self, ref, sup, idx):
        b, c, h, w = ref.shape
        p = self.patch_size
        r = patchify(ref, p)
        n, p2 = r.shape[1], r.shape[2]
        mem = ops.reshape(gather_patches(patchify(sup, p), idx), (b * n, -1, c))
        x = ops.reshape(r, (b * n, p2, c))
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), self.norm_kv(mem))
        x = x + self.mlp(self.norm3(x))
        return unpatchify(ops.reshape(x, (b, n, p2, c)), p, h, w)
