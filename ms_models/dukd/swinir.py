"""SwinIR (Liang et al. 2021) for classical SR with BasicSR parameter names; the MindSpore twin of
``pt_reference/dukd/swinir.py``. ``relative_position_index`` and the shifted blocks' ``attn_mask``
are non-trainable Parameters so that the official checkpoints convert one to one.

The cyclic shift is written with slices and concat (no ``roll``), and the shifted-window mask for
an input size other than ``img_size`` is built from the static shape with MindSpore ops, so the
network compiles in GRAPH mode for any multiple of the window size.

Input: float32 (B, 3, h, w) in [0, 1], h and w multiples of the window size; output (B, 3, s*h, s*w).
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from ms_models.layers.drop_path import DropPath
from ms_models.registry import register_model

from .common import DIV2K_RGB_MEAN, MeanShift, Upsample, check_scale, conv


def relative_position_index(window):
    """(w*w, w*w) int64 index into the (2w-1)^2 bias table (Swin convention)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).astype(np.int64)


def shifted_window_mask_np(h, w, window, shift):
    """(nW, w*w, w*w) float32 additive mask (0 / -100), numpy (used at construction)."""
    img = np.zeros((h, w), np.float32)
    cnt = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[hs, ws] = cnt
            cnt += 1
    win = img.reshape(h // window, window, w // window, window).transpose(0, 2, 1, 3).reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


def _region_ids(n, window, shift):
    """Region index 0/1/2 along one axis of length ``n`` (slices [0, n-w), [n-w, n-s), [n-s, n))."""
    return ops.concat((ops.zeros((n - window,), ms.float32), ops.ones((window - shift,), ms.float32),
                       ops.full((shift,), 2.0, dtype=ms.float32)))


def shifted_window_mask(h, w, window, shift):
    """The same mask as :func:`shifted_window_mask_np`, from MindSpore ops (GRAPH-mode safe)."""
    img = _region_ids(h, window, shift).reshape(h, 1) * 3.0 + _region_ids(w, window, shift).reshape(1, w)
    win = ops.transpose(img.reshape(h // window, window, w // window, window), (0, 2, 1, 3))
    win = win.reshape(-1, window * window)
    diff = ops.expand_dims(win, 1) - ops.expand_dims(win, 2)
    return ops.select(diff != 0, ops.full(diff.shape, -100.0, dtype=ms.float32), ops.zeros(diff.shape, ms.float32))


def roll2d(x, shift):
    """``torch.roll(x, (shift, shift), dims=(1, 2))`` for (B, H, W, C) with a static shift."""
    h, w = x.shape[1], x.shape[2]
    sh, sw = shift % h, shift % w
    if sh:
        x = ops.concat((x[:, h - sh:], x[:, :h - sh]), 1)
    if sw:
        x = ops.concat((x[:, :, w - sw:], x[:, :, :w - sw]), 2)
    return x


def window_partition(x, window):
    """(B, H, W, C) -> (B*nW, window, window, C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c)
    return ops.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(-1, window, window, c)


def window_reverse(windows, window, h, w):
    """(B*nW, window, window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.reshape(b, h // window, w // window, window, window, c)
    return ops.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(b, h, w, c)


def _dense(i, o, bias=True):
    return nn.Dense(i, o, has_bias=bias, weight_init=TruncatedNormal(0.02), bias_init="zeros")


def _layer_norm(dim):
    return nn.LayerNorm((dim,), epsilon=1e-5)


class Mlp(nn.Cell):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = _dense(in_features, hidden_features)
        self.act = nn.GELU(approximate=False)
        self.fc2 = _dense(hidden_features, in_features)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Cell):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    def __init__(self, dim, window, num_heads, qkv_bias=True):
        super().__init__()
        self.dim, self.window, self.num_heads = dim, window, num_heads
        self.scale = float((dim // num_heads) ** -0.5)
        self.relative_position_bias_table = Parameter(
            initializer(TruncatedNormal(0.02), ((2 * window - 1) ** 2, num_heads), ms.float32),
            name="relative_position_bias_table")
        self.relative_position_index = Parameter(Tensor(relative_position_index(window)),
                                                 name="relative_position_index", requires_grad=False)
        self.qkv = _dense(dim, dim * 3, qkv_bias)
        self.proj = _dense(dim, dim)

    def construct(self, x, mask=None):
        b_, n, c = x.shape
        h = self.num_heads
        qkv = ops.transpose(self.qkv(x).reshape(b_, n, 3, h, c // h), (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ops.matmul(q * self.scale, ops.transpose(k, (0, 1, 3, 2)))
        bias = ops.gather(self.relative_position_bias_table, self.relative_position_index.reshape(-1), 0)
        attn = attn + ops.expand_dims(ops.transpose(bias.reshape(n, n, h), (2, 0, 1)), 0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(b_ // nw, nw, h, n, n) + mask.reshape(1, nw, 1, n, n)
            attn = attn.reshape(-1, h, n, n)
        attn = ops.softmax(attn, -1)
        x = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3)).reshape(b_, n, c)
        return self.proj(x)


class SwinTransformerBlock(nn.Cell):
    """LN - (shifted) window attention - residual; LN - MLP - residual."""

    def __init__(self, dim, input_resolution, num_heads, window_size=8, shift_size=0, mlp_ratio=2.0,
                 qkv_bias=True, drop_path=0.0):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= self.window_size:
            self.shift_size, self.window_size = 0, min(self.input_resolution)
        self.norm1 = _layer_norm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = _layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.has_mask = self.shift_size > 0
        if self.has_mask:
            self.attn_mask = Parameter(Tensor(shifted_window_mask_np(*self.input_resolution, self.window_size,
                                                                     self.shift_size)),
                                       name="attn_mask", requires_grad=False)

    def construct(self, x, x_size):
        h, w = x_size
        b, _, c = x.shape
        s, ws = self.shift_size, self.window_size
        shortcut = x
        x = self.norm1(x).reshape(b, h, w, c)
        if self.has_mask:
            x = roll2d(x, -s)
            if h == self.input_resolution[0] and w == self.input_resolution[1]:
                mask = self.attn_mask
            else:
                mask = shifted_window_mask(h, w, ws, s)
            out = self.attn(window_partition(x, ws).reshape(-1, ws * ws, c), mask)
        else:
            out = self.attn(window_partition(x, ws).reshape(-1, ws * ws, c))
        x = window_reverse(out.reshape(-1, ws, ws, c), ws, h, w)
        if self.has_mask:
            x = roll2d(x, s)
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Cell):
    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path):
        super().__init__()
        self.blocks = nn.CellList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)])

    def construct(self, x, x_size):
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class RSTB(nn.Cell):
    """Residual Swin Transformer block: a BasicLayer, a conv3x3 on the unflattened map, plus input."""

    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path):
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias,
                                         drop_path)
        self.conv = conv(dim, dim)

    def construct(self, x, x_size):
        y = self.residual_group(x, x_size)
        b, n, c = y.shape
        y = self.conv(ops.transpose(y, (0, 2, 1)).reshape(b, c, x_size[0], x_size[1]))
        return ops.transpose(y.reshape(b, c, n), (0, 2, 1)) + x


class PatchEmbed(nn.Cell):
    """(B, C, H, W) -> (B, H*W, C), then LayerNorm (``patch_norm``)."""

    def __init__(self, embed_dim, patch_norm=True):
        super().__init__()
        self.use_norm = bool(patch_norm)
        if self.use_norm:
            self.norm = _layer_norm(embed_dim)

    def construct(self, x):
        b, c, h, w = x.shape
        x = ops.transpose(x.reshape(b, c, h * w), (0, 2, 1))
        if self.use_norm:
            x = self.norm(x)
        return x


class SwinIR(nn.Cell):
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
        self.conv_first = conv(in_chans, embed_dim)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        dpr = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.CellList([
            RSTB(embed_dim, res, depths[i], num_heads[i], window_size, mlp_ratio, qkv_bias,
                 dpr[sum(depths[:i]):sum(depths[:i + 1])]) for i in range(len(depths))])
        self.norm = _layer_norm(embed_dim)
        self.conv_after_body = conv(embed_dim, embed_dim)
        self.conv_before_upsample = nn.SequentialCell([conv(embed_dim, num_feat), nn.LeakyReLU(0.01)])
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = conv(num_feat, in_chans)

    def forward_features(self, x):
        b, c, h, w = x.shape
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, (h, w))
        return ops.transpose(self.norm(x), (0, 2, 1)).reshape(b, c, h, w)

    def construct(self, x):
        x = self.conv_first(self.shift.sub(x))
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return self.shift.add(x)


@register_model
def swinir(**kw):
    """BasicSR SwinIR (classical SR, pixel-shuffle upsampler); keyword arguments as :class:`SwinIR`."""
    return SwinIR(**kw)
