"""SwinIR (Liang et al. 2021) for classical SR with BasicSR parameter and buffer names
(``basicsr/archs/swinir_arch.py``: ``relative_position_index`` and the shifted blocks'
``attn_mask`` are persistent buffers), so the official ``*_SwinIR-M_x{s}.pth`` loads strictly.

Input: float32 (B, 3, h, w) in [0, 1] with h, w multiples of the window size; output (B, 3, s*h, s*w).
Only ``upsampler='pixelshuffle'`` and ``resi_connection='1conv'`` (the DUKD configurations).
"""
import numpy as np
import torch
from torch import nn

from pt_reference.registry import register_model

from .common import DIV2K_RGB_MEAN, MeanShift, Upsample, check_scale


def relative_position_index(window):
    """(w*w, w*w) int64 index into the (2w-1)^2 bias table (Swin convention)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).astype(np.int64)


def shifted_window_mask(h, w, window, shift):
    """(nW, w*w, w*w) float32 additive mask (0 / -100) of the shifted-window attention."""
    img = np.zeros((h, w), np.float32)
    cnt = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[hs, ws] = cnt
            cnt += 1
    win = img.reshape(h // window, window, w // window, window).transpose(0, 2, 1, 3).reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


def window_partition(x, window):
    """(B, H, W, C) -> (B*nW, window, window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def window_reverse(windows, window, h, w):
    """(B*nW, window, window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class DropPath(nn.Module):
    """Per-sample stochastic depth (identity in eval mode or with ``drop_prob`` 0)."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = torch.floor(keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device))
        return x / keep * mask


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    def __init__(self, dim, window, num_heads, qkv_bias=True):
        super().__init__()
        self.dim, self.window, self.num_heads = dim, window, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", torch.from_numpy(relative_position_index(window)))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


class SwinTransformerBlock(nn.Module):
    """LN - (shifted) window attention - residual; LN - MLP - residual."""

    def __init__(self, dim, input_resolution, num_heads, window_size=8, shift_size=0, mlp_ratio=2.0,
                 qkv_bias=True, drop_path=0.0):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= self.window_size:
            self.shift_size, self.window_size = 0, min(self.input_resolution)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if self.shift_size > 0:
            mask = torch.from_numpy(shifted_window_mask(*self.input_resolution, self.window_size, self.shift_size))
            self.register_buffer("attn_mask", mask)
        else:
            self.attn_mask = None

    def forward(self, x, x_size):
        h, w = x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        s, ws = self.shift_size, self.window_size
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, c)
        mask = None
        if s > 0:
            mask = (self.attn_mask if tuple(x_size) == self.input_resolution
                    else torch.from_numpy(shifted_window_mask(h, w, ws, s)).to(x.device))
        x = window_reverse(self.attn(windows, mask).view(-1, ws, ws, c), ws, h, w)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)])

    def forward(self, x, x_size):
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer block: a BasicLayer, a conv3x3 on the unflattened map, plus input."""

    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path):
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias,
                                         drop_path)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x, x_size):
        y = self.residual_group(x, x_size)
        b, n, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, x_size[0], x_size[1]))
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, H*W, C), then LayerNorm (``patch_norm``)."""

    def __init__(self, embed_dim, patch_norm=True):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class SwinIR(nn.Module):
    """conv_first -> RSTBs (patch tokens) -> norm -> conv_after_body (+ skip) -> conv_before_upsample
    (conv + LeakyReLU 0.01) -> Upsample -> conv_last."""

    def __init__(self, upscale=2, in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=(6, 6, 6, 6),
                 embed_dim=60, num_heads=(6, 6, 6, 6), mlp_ratio=2.0, qkv_bias=True, drop_path_rate=0.1,
                 patch_norm=True, upsampler="pixelshuffle", resi_connection="1conv", num_feat=64):
        super().__init__()
        if upsampler != "pixelshuffle" or resi_connection != "1conv":
            raise ValueError(f"SwinIR: only upsampler='pixelshuffle' and resi_connection='1conv' are implemented, "
                             f"got {upsampler!r}, {resi_connection!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"SwinIR: depths {depths} and num_heads {num_heads} differ in length")
        self.upscale = check_scale(upscale)
        self.window_size = window_size
        self.shift = MeanShift(img_range, DIV2K_RGB_MEAN, in_chans)
        res = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        dpr = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList([
            RSTB(embed_dim, res, depths[i], num_heads[i], window_size, mlp_ratio, qkv_bias,
                 dpr[sum(depths[:i]):sum(depths[:i + 1])]) for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(0.01))
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x):
        b, c, h, w = x.shape
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, (h, w))
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x):
        if x.shape[-1] % self.window_size or x.shape[-2] % self.window_size:
            raise ValueError(f"SwinIR input {tuple(x.shape)}: height and width must be multiples of the window "
                             f"size {self.window_size} (pad first, see pt_reference.dukd.task.super_resolve)")
        x = self.conv_first(self.shift.sub(x))
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return self.shift.add(x)


@register_model
def swinir(**kw):
    """BasicSR SwinIR (classical SR, pixel-shuffle upsampler); keyword arguments as :class:`SwinIR`."""
    return SwinIR(**kw)
