"""HDR-Transformer reconstruction shell (PyTorch twin of ``ms_models.ift.transformer``): context-aware
transformer blocks (Swin window attention, shifted every second block, plus a local context
extractor), spatial attention module. Names follow liuzhen03/HDR-Transformer-PyTorch; the
relative-position index is a non-persistent buffer and the shifted-window mask is built on the fly
from ``arange`` comparisons, as in the MindSpore tree.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_

from common.data.hdr_patches import relative_position_index


def conv2d(cin, cout, k, padding, dilation=1, bias=True):
    return nn.Conv2d(cin, cout, k, 1, padding, dilation=dilation, bias=bias)


def linear(cin, cout, bias=True):
    """``nn.Linear`` with timm's trunc-normal(0.02) weights and zero bias."""
    m = nn.Linear(cin, cout, bias=bias)
    trunc_normal_(m.weight, std=0.02)
    if bias:
        nn.init.zeros_(m.bias)
    return m


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, in_features, hidden_features=None, out_features=None):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = linear(hidden_features, out_features or in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x, ws):
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def window_reverse(windows, ws, h, w):
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def shifted_window_mask(h, w, ws, shift, device=None):
    """Swin SW-MSA mask (nW, ws*ws, ws*ws): 0 within a region, -100 across regions."""
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    row_id = (rows >= h - ws).int() + (rows >= h - shift).int()
    col_id = (cols >= w - ws).int() + (cols >= w - shift).int()
    region = (row_id[:, None] * 3 + col_id[None, :]).float()
    win = window_partition(region.reshape(1, h, w, 1), ws).reshape(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


class WindowAttention(nn.Module):
    def __init__(self, dim, window_size, num_heads, qkv_bias=True):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index",
                             torch.from_numpy(relative_position_index(window_size).reshape(-1)).long(),
                             persistent=False)
        self.qkv = linear(dim, dim * 3, qkv_bias)
        self.proj = linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index].reshape(n, n, h)
        attn = attn + bias.permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.reshape(b // nw, nw, h, n, n) + mask[None, :, None]).reshape(-1, h, n, n)
        attn = F.softmax(attn.float(), dim=-1).to(v.dtype)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class LocalContextExtractor(nn.Module):
    def __init__(self, dim, reduction=8):
        super().__init__()
        r = max(dim // reduction, 1)
        self.conv = nn.Sequential(conv2d(dim, r, 1, 0), conv2d(r, r, 3, 1), conv2d(r, dim, 1, 0), nn.LeakyReLU(0.2))
        self.fc = nn.Sequential(linear(dim, r, bias=False), nn.ReLU(), linear(r, dim, bias=False), nn.Sigmoid())

    def forward(self, x):
        x = self.conv(x)
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class ContextAwareTransformer(nn.Module):
    def __init__(self, dim, num_heads, window_size=8, shift_size=0, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        self.dim, self.window_size, self.shift_size = dim, window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.lce = LocalContextExtractor(dim)

    def forward(self, x, x_size):
        h, w = x_size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).reshape(b, h, w, c)
        lcf = x.permute(0, 3, 1, 2)
        shifted = torch.roll(x, (-s, -s), (1, 2)) if s > 0 else x
        windows = window_partition(shifted, ws).reshape(-1, ws * ws, c)
        mask = shifted_window_mask(h, w, ws, s, x.device) if s > 0 else None
        shifted = window_reverse(self.attn(windows, mask).reshape(-1, ws, ws, c), ws, h, w)
        x = torch.roll(shifted, (s, s), (1, 2)) if s > 0 else shifted
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return self.lce(lcf).reshape(b, c, h * w).permute(0, 2, 1) + x


class BasicLayer(nn.Module):
    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        dpr = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.ModuleList([
            ContextAwareTransformer(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                    mlp_ratio, dpr[i]) for i in range(depth)])

    def forward(self, x, x_size):
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, embed_dim, norm=False):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


def patch_unembed(x, x_size):
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, x_size[0], x_size[1])


class ContextAwareTransformerBlock(nn.Module):
    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, drop_path)
        self.dilated_conv = conv2d(dim, dim, 3, 2, dilation=2)
        self.patch_embed = PatchEmbed(dim)

    def forward(self, x, x_size):
        res = patch_unembed(self.residual_group(x, x_size), x_size)
        return self.patch_embed(self.dilated_conv(res)) + x


class SpatialAttentionModule(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.att1 = conv2d(dim * 2, dim * 2, 3, 1)
        self.att2 = conv2d(dim * 2, dim, 3, 1)
        self.relu = nn.LeakyReLU(0.01)

    def forward(self, x1, x2):
        return torch.sigmoid(self.att2(self.relu(self.att1(torch.cat((x1, x2), 1)))))
