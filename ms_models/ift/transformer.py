"""HDR-Transformer reconstruction shell (MindSpore): context-aware transformer blocks (Swin window
attention, shifted every second block, plus a local context extractor), spatial attention module.

Names follow liuzhen03/HDR-Transformer-PyTorch (``models/hdr_transformer.py``). The cyclic shift is
slicing plus concat (``roll`` has no CPU kernel) and the shifted-window mask is built from
``arange`` comparisons, so any H, W that are multiples of the window size trace with static shapes.
"""
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from common.data.hdr_patches import relative_position_index
from ms_models.layers import DropPath, Mlp, dense, layer_norm


def conv2d(cin, cout, k, padding, dilation=1, bias=True):
    """torch-style ``nn.Conv2d(cin, cout, k, 1, padding, dilation)``."""
    return nn.Conv2d(cin, cout, k, stride=1, pad_mode="pad", padding=padding, dilation=dilation, has_bias=bias)


def roll2d(x, shift_h, shift_w):
    """``torch.roll(x, (shift_h, shift_w), dims=(1, 2))`` for (B, H, W, C)."""
    h, w = x.shape[1], x.shape[2]
    sh, sw = shift_h % h, shift_w % w
    if sh:
        x = ops.concat((x[:, h - sh:], x[:, :h - sh]), 1)
    if sw:
        x = ops.concat((x[:, :, w - sw:], x[:, :, :w - sw]), 2)
    return x


def window_partition(x, ws):
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C)."""
    b, h, w, c = x.shape
    x = ops.reshape(x, (b, h // ws, ws, w // ws, ws, c))
    return ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, ws, ws, c))


def window_reverse(windows, ws, h, w):
    """(B * H/ws * W/ws, ws, ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = ops.reshape(windows, (-1, h // ws, w // ws, ws, ws, c))
    return ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, h, w, c))


def shifted_window_mask(h, w, ws, shift):
    """Swin SW-MSA mask (nW, ws*ws, ws*ws): 0 within a region, -100 across regions."""
    rows = ops.arange(h).astype(ms.int32)
    cols = ops.arange(w).astype(ms.int32)
    row_id = (rows >= h - ws).astype(ms.int32) + (rows >= h - shift).astype(ms.int32)
    col_id = (cols >= w - ws).astype(ms.int32) + (cols >= w - shift).astype(ms.int32)
    region = (row_id[:, None] * 3 + col_id[None, :]).astype(ms.float32)
    win = ops.reshape(window_partition(ops.reshape(region, (1, h, w, 1)), ws), (-1, ws * ws))
    diff = win[:, None, :] - win[:, :, None]
    return ops.select(diff != 0, ops.full_like(diff, -100.0), ops.zeros_like(diff))


class WindowAttention(nn.Cell):
    """Multi-head self-attention inside ws x ws windows with a relative position bias.

    Input (B_, N, C) with N = ws*ws, optional mask (nW, N, N); output (B_, N, C).
    """

    def __init__(self, dim, window_size, num_heads, qkv_bias=True):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = Parameter(
            initializer(TruncatedNormal(0.02), ((2 * window_size - 1) ** 2, num_heads), ms.float32),
            name="relative_position_bias_table")
        self.relative_position_index = Tensor(relative_position_index(window_size).reshape(-1))
        self.qkv = dense(dim, dim * 3, qkv_bias)
        self.proj = dense(dim, dim)

    def construct(self, x, mask=None):
        b, n, c = x.shape
        h = self.num_heads
        qkv = ops.transpose(ops.reshape(self.qkv(x), (b, n, 3, h, c // h)), (2, 0, 3, 1, 4))
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        bias = ops.gather(self.relative_position_bias_table, self.relative_position_index, 0)
        attn = attn + ops.transpose(ops.reshape(bias, (n, n, h)), (2, 0, 1))[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = ops.reshape(attn, (b // nw, nw, h, n, n)) + mask[None, :, None]
            attn = ops.reshape(attn, (-1, h, n, n))
        attn = ops.softmax(attn.astype(ms.float32), axis=-1).astype(v.dtype)
        x = ops.reshape(ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3)), (b, n, c))
        return self.proj(x)


class LocalContextExtractor(nn.Cell):
    """1x1 reduce, 3x3, 1x1 expand, LeakyReLU(0.2), then squeeze-excitation channel attention."""

    def __init__(self, dim, reduction=8):
        super().__init__()
        r = max(dim // reduction, 1)
        self.conv = nn.SequentialCell([conv2d(dim, r, 1, 0), conv2d(r, r, 3, 1), conv2d(r, dim, 1, 0),
                                       nn.LeakyReLU(0.2)])
        self.fc = nn.SequentialCell([dense(dim, r, bias=False), nn.ReLU(), dense(r, dim, bias=False), nn.Sigmoid()])

    def construct(self, x):
        x = self.conv(x)
        y = self.fc(x.mean(axis=(2, 3)))
        return x * y[:, :, None, None]


class ContextAwareTransformer(nn.Cell):
    """One (shifted) window-attention block with MLP and a parallel local context branch.

    Input (B, H*W, C) and ``x_size`` (H, W); H and W must be multiples of ``window_size``.
    """

    def __init__(self, dim, num_heads, window_size=8, shift_size=0, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        self.dim, self.window_size, self.shift_size = dim, window_size, shift_size
        self.norm1 = layer_norm(dim, 1e-5)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = layer_norm(dim, 1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.lce = LocalContextExtractor(dim)

    def construct(self, x, x_size):
        h, w = x_size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        shortcut = x
        x = ops.reshape(self.norm1(x), (b, h, w, c))
        lcf = ops.transpose(x, (0, 3, 1, 2))
        shifted = roll2d(x, -s, -s) if s > 0 else x
        windows = ops.reshape(window_partition(shifted, ws), (-1, ws * ws, c))
        mask = shifted_window_mask(h, w, ws, s) if s > 0 else None
        attn = ops.reshape(self.attn(windows, mask), (-1, ws, ws, c))
        shifted = window_reverse(attn, ws, h, w)
        x = roll2d(shifted, s, s) if s > 0 else shifted
        x = shortcut + self.drop_path(ops.reshape(x, (b, h * w, c)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        lc = ops.transpose(ops.reshape(self.lce(lcf), (b, c, h * w)), (0, 2, 1))
        return lc + x


class BasicLayer(nn.Cell):
    """``depth`` blocks; odd blocks shift their windows by ``window_size // 2``."""

    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        dpr = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.CellList([
            ContextAwareTransformer(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                    mlp_ratio, dpr[i]) for i in range(depth)])

    def construct(self, x, x_size):
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


class PatchEmbed(nn.Cell):
    """(B, C, H, W) -> (B, H*W, C), optionally layer-normed (HDR-Transformer patch size 1)."""

    def __init__(self, embed_dim, norm=False):
        super().__init__()
        self.norm = layer_norm(embed_dim, 1e-5) if norm else None

    def construct(self, x):
        b, c = x.shape[0], x.shape[1]
        x = ops.transpose(ops.reshape(x, (b, c, -1)), (0, 2, 1))
        return self.norm(x) if self.norm is not None else x


def patch_unembed(x, x_size):
    """(B, H*W, C) -> (B, C, H, W)."""
    b, _, c = x.shape
    return ops.reshape(ops.transpose(x, (0, 2, 1)), (b, c, x_size[0], x_size[1]))


class ContextAwareTransformerBlock(nn.Cell):
    """Residual group: BasicLayer, dilated 3x3 conv, plus the group input."""

    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, drop_path)
        self.dilated_conv = conv2d(dim, dim, 3, 2, dilation=2)
        self.patch_embed = PatchEmbed(dim)

    def construct(self, x, x_size):
        res = patch_unembed(self.residual_group(x, x_size), x_size)
        return self.patch_embed(self.dilated_conv(res)) + x


class SpatialAttentionModule(nn.Cell):
    """AHDRNet attention map sigmoid(att2(lrelu(att1([x1, x2])))) in (0, 1), shape of x1."""

    def __init__(self, dim):
        super().__init__()
        self.att1 = conv2d(dim * 2, dim * 2, 3, 1)
        self.att2 = conv2d(dim * 2, dim, 3, 1)
        self.relu = nn.LeakyReLU(0.01)

    def construct(self, x1, x2):
        return ops.sigmoid(self.att2(self.relu(self.att1(ops.concat((x1, x2), 1)))))
