"""SCF, self-cross fusion (PyTorch twin of ``ms_models.ift.scf``; see its docstring)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .transformer import Mlp, linear


def patchify(x, p):
    """(B, C, H, W) -> (B, N, p*p, C)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p, c)


def unpatchify(x, p, h, w):
    """(B, N, p*p, C) -> (B, C, H, W)."""
    b, _, _, c = x.shape
    return x.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


def gather_patches(x, idx):
    """x (B, N, P, C), idx (B, N, k) -> (B, N, k * P, C)."""
    b, n, p2, c = x.shape
    k = idx.shape[-1]
    flat = (idx.long() + torch.arange(b, device=x.device).reshape(b, 1, 1) * n).reshape(-1)
    return x.reshape(b * n, p2 * c).index_select(0, flat).reshape(b, n, k * p2, c)


def _heads(x, h):
    b, l, c = x.shape
    return x.reshape(b, l, h, c // h).transpose(1, 2)


def _attend(q, k, v, scale):
    attn = F.softmax(((q @ k.transpose(-2, -1)) * scale).float(), dim=-1)
    out = attn.to(v.dtype) @ v
    b, h, l, d = out.shape
    return out.transpose(1, 2).reshape(b, l, h * d)


class PatchSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.qkv = linear(dim, dim * 3)
        self.proj = linear(dim, dim)

    def forward(self, x):
        b, l, c = x.shape
        qkv = self.qkv(x).reshape(b, l, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(_attend(qkv[0], qkv[1], qkv[2], self.scale))


class PatchCrossAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.q = linear(dim, dim)
        self.kv = linear(dim, dim * 2)
        self.proj = linear(dim, dim)

    def forward(self, x, mem):
        b, l, c = mem.shape
        kv = self.kv(mem).reshape(b, l, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(_attend(_heads(self.q(x), self.num_heads), kv[0], kv[1], self.scale))


class SelfCrossFusion(nn.Module):
    """``ref``, ``sup`` (B, C, H, W), ``idx`` (B, N, k) -> (B, C, H, W)."""

    def __init__(self, dim, num_heads, patch_size, mlp_ratio=2.0):
        super().__init__()
        self.patch_size = patch_size
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = PatchSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross_attn = PatchCrossAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, ref, sup, idx):
        b, c, h, w = ref.shape
        p = self.patch_size
        r = patchify(ref, p)
        n, p2 = r.shape[1], r.shape[2]
        mem = gather_patches(patchify(sup, p), idx).reshape(b * n, -1, c)
        x = r.reshape(b * n, p2, c)
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), self.norm_kv(mem))
        x = x + self.mlp(self.norm3(x))
        return unpatchify(x.reshape(b, n, p2, c), p, h, w)
