"""Swin Transformer, the MindSpore twin of timm's (>= 0.9) ``SwinTransformer`` (NHWC layout,
patch merging at the start of stages 2-4; same parameter names, shapes and numerics).

Names: patch_embed.{proj, norm}, layers.i.[downsample.{norm, reduction}], layers.i.blocks.j.{norm1,
attn.{relative_position_bias_table, qkv, proj}, norm2, mlp.{fc1, fc2}}, norm, head.fc.  LayerNorm
eps 1e-5, exact GELU.  The cyclic shift of shifted windows is built from slicing and concatenation
(MindSpore has no CPU roll kernel); the relative-position index and the shift masks are constants.
Input (B, 3, img_size, img_size) float32; the grid at every stage must be a multiple of its window
(timm shrinks a window that is larger than the grid to the grid and then does not shift).
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from ..layers import DropPath, Mlp, dense, layer_norm, take_indices
from ..registry import register_model

LN_EPS = 1e-5


def relative_position_index(win_h, win_w):
    """(win_h*win_w, win_h*win_w) int index into the (2*win_h-1)*(2*win_w-1) bias table (timm's rule)."""
    coords = np.stack(np.meshgrid(np.arange(win_h), np.arange(win_w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    rel[:, :, 0] += win_h - 1
    rel[:, :, 1] += win_w - 1
    rel[:, :, 0] *= 2 * win_w - 1
    return rel.sum(-1)


def window_partition(x, window):
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows, window, h, w):
    """Inverse of :func:`window_partition`: (B * nW, w*w, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // window, w // window, window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_attention_mask(h, w, window, shift):
    """(nW, w*w, w*w) float32 mask: 0 inside a region of the shifted image, -100 across regions."""
    img = np.zeros((1, h, w, 1), np.float32)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[:, hs, ws, :] = count
            count += 1
    win = img.reshape(1, h // window, window, w // window, window, 1).transpose(0, 1, 3, 2, 4, 5)
    win = win.reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


def cyclic_shift(x, sh, sw):
    """``torch.roll(x, (-sh, -sw), dims=(1, 2))`` on (B, H, W, C) by slicing and concatenation."""
    x = ops.concat((x[:, sh:], x[:, :sh]), axis=1)
    return ops.concat((x[:, :, sw:], x[:, :, :sw]), axis=2)


def reverse_cyclic_shift(x, sh, sw):
    """``torch.roll(x, (sh, sw), dims=(1, 2))`` on (B, H, W, C) by slicing and concatenation."""
    h, w = x.shape[1], x.shape[2]
    x = ops.concat((x[:, h - sh:], x[:, :h - sh]), axis=1)
    return ops.concat((x[:, :, w - sw:], x[:, :, :w - sw]), axis=2)


class WindowAttention(nn.Cell):
    """Multi-head attention inside (B*nW, N, C) windows with a learned relative-position bias."""

    def __init__(self, dim, num_heads, window_size, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.window_area = window_size * window_size
        self.relative_position_bias_table = Parameter(
            initializer(TruncatedNormal(0.02), ((2 * window_size - 1) ** 2, num_heads)),
            name="relative_position_bias_table")
        index = relative_position_index(window_size, window_size).reshape(-1).astype(np.int32)
        self.relative_position_index = ms.Tensor(index)
        self.qkv = dense(dim, dim * 3, qkv_bias)
        self.proj = dense(dim, dim)

    def _rel_pos_bias(self):
        n = self.window_area
        bias = ops.gather(self.relative_position_bias_table, self.relative_position_index, 0)
        return bias.reshape(n, n, -1).transpose(2, 0, 1).expand_dims(0)

    def construct(self, x, mask=None):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ops.matmul(q * self.scale, k.swapaxes(-2, -1)) + self._rel_pos_bias()
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(-1, nw, self.num_heads, n, n) + mask.expand_dims(1).expand_dims(0)
            attn = attn.reshape(-1, self.num_heads, n, n)
        x = ops.matmul(ops.softmax(attn, axis=-1), v)
        return self.proj(x.transpose(0, 2, 1, 3).reshape(b, n, c))


class SwinTransformerBlock(nn.Cell):
    """(Shifted-)window attention block on (B, H, W, C)."""

    def __init__(self, dim, input_resolution, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0,
                 qkv_bias=True, drop_path=0.0):
        super().__init__()
        h, w = input_resolution
        if min(h, w) <= window_size:  # timm: one window covers the grid, no shift
            window_size, shift_size = min(h, w), 0
        if h % window_size or w % window_size:
            raise ValueError(f"Swin grid {input_resolution} is not a multiple of window_size {window_size}; "
                             "choose img_size so that every stage grid divides by the window")
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = layer_norm(dim, LN_EPS)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = layer_norm(dim, LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)
        self.attn_mask = ms.Tensor(shift_attention_mask(h, w, window_size, shift_size)) if shift_size else None

    def _attn(self, x):
        b, h, w, c = x.shape
        s = self.shift_size
        if s:
            x = cyclic_shift(x, s, s)
        windows = self.attn(window_partition(x, self.window_size), self.attn_mask)
        x = window_reverse(windows, self.window_size, h, w)
        if s:
            x = reverse_cyclic_shift(x, s, s)
        return x

    def construct(self, x):
        b, h, w, c = x.shape
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = x.reshape(b, -1, c)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.reshape(b, h, w, c)


class PatchMerging(nn.Cell):
    """(B, H, W, C) -> (B, H/2, W/2, out_dim): 2x2 neighbours concatenated in the order (0,0), (1,0),
    (0,1), (1,1) (row, column offsets), LayerNorm(4C), bias-free Linear."""

    def __init__(self, dim, out_dim=None, eps=LN_EPS):
        super().__init__()
        self.out_dim = out_dim or 2 * dim
        self.norm = layer_norm(4 * dim, eps)
        self.reduction = dense(4 * dim, self.out_dim, bias=False)

    def construct(self, x):
        b, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"PatchMerging needs an even grid, got {h}x{w}")
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 4, 2, 5).reshape(b, h // 2, w // 2, 4 * c)
        return self.reduction(self.norm(x))


class SwinTransformerStage(nn.Cell):
    """Optional PatchMerging (stages after the first), then ``depth`` blocks alternating W-MSA / SW-MSA."""

    def __init__(self, dim, out_dim, input_resolution, depth, downsample, num_heads, window_size, mlp_ratio,
                 qkv_bias, drop_path):
        super().__init__()
        self.downsample = PatchMerging(dim, out_dim) if downsample else nn.Identity()
        res = (input_resolution[0] // 2, input_resolution[1] // 2) if downsample else tuple(input_resolution)
        self.output_resolution = res
        self.blocks = nn.SequentialCell([
            SwinTransformerBlock(out_dim, res, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio, qkv_bias, drop_path[i]) for i in range(depth)])

    def construct(self, x):
        return self.blocks(self.downsample(x))


class SwinPatchEmbed(nn.Cell):
    """(B, C, H, W) -> (B, H/p, W/p, embed_dim): conv ``proj`` then LayerNorm ``norm`` (NHWC)."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"Swin img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, pad_mode="valid", has_bias=True)
        self.norm = layer_norm(embed_dim, LN_EPS)

    def construct(self, x):
        return self.norm(self.proj(x).transpose(0, 2, 3, 1))


class SwinTransformer(nn.Cell):
    """timm SwinTransformer (absolute position embedding off, average pooling head).

    Args:
        img_size, patch_size, in_chans: input geometry.
        num_classes: classifier width; 0 gives no classifier.
        embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias: architecture.
        drop_path_rate: stochastic depth, rising linearly over all blocks (timm default 0.1).
    """

    def __init__(self, img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96, depths=(2, 2, 6, 2),
                 num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.1):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"Swin depths {depths} and num_heads {num_heads} must have the same length")
        self.num_classes = num_classes
        self.num_layers = len(depths)
        dims = [int(embed_dim * 2 ** i) for i in range(self.num_layers)]
        self.num_features = dims[-1]
        self.patch_embed = SwinPatchEmbed(img_size, patch_size, in_chans, dims[0])
        rates = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        layers, res, start = [], self.patch_embed.grid_size, 0
        for i, depth in enumerate(depths):
            stage = SwinTransformerStage(dims[max(i - 1, 0)], dims[i], res, depth, i > 0, num_heads[i], window_size,
                                         mlp_ratio, qkv_bias, rates[start:start + depth])
            layers.append(stage)
            res, start = stage.output_resolution, start + depth
        self.layers = nn.SequentialCell(layers)
        self.norm = layer_norm(self.num_features, LN_EPS)
        self.head = SwinHead(self.num_features, num_classes)

    def forward_features(self, x):
        """(B, C, H, W) -> normalised final map (B, H/32, W/32, num_features) (NHWC)."""
        return self.norm(self.layers(self.patch_embed(x)))

    def forward_head(self, x, pre_logits=False):
        return self.head(x, pre_logits)

    def forward_intermediates(self, x, indices=None, intermediates_only=False):
        """timm ``forward_intermediates``: stage outputs in NCHW (the final norm is not applied)."""
        taken, _ = take_indices(self.num_layers, indices)
        x = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.layers):
            x = stage(x)
            if i in taken:
                outs.append(x.transpose(0, 3, 1, 2))
        return outs if intermediates_only else (self.norm(x), outs)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


class SwinHead(nn.Cell):
    """Average over H and W of an NHWC map, then ``fc`` (timm ``ClassifierHead``, names head.fc)."""

    def __init__(self, dim, num_classes):
        super().__init__()
        self.fc = dense(dim, num_classes) if num_classes > 0 else nn.Identity()

    def construct(self, x, pre_logits=False):
        x = ops.mean(x, (1, 2))
        return x if pre_logits else self.fc(x)


_VARIANTS = {
    "swin_tiny_patch4_window7_224": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "swin_small_patch4_window7_224": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "swin_base_patch4_window7_224": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    # OFA-KD's small students (custom_model/swin_transformer.py of Hao840/OFAKD).
    "swin_nano_patch4_window7_224": dict(embed_dim=64, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16)),
    "swin_pico_patch4_window7_224": dict(embed_dim=48, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16)),
}


def _builder(name):
    def build(**kwargs):
        return SwinTransformer(**{"patch_size": 4, "window_size": 7, **_VARIANTS[name], **kwargs})

    build.__name__ = name
    build.__doc__ = (f"Swin ``{name}`` (kwargs override the architecture: num_classes, img_size, embed_dim, "
                     "depths, num_heads, window_size, drop_path_rate).")
    return build


for _name in _VARIANTS:
    register_model(_builder(_name))
