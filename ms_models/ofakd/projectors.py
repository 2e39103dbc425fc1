"""OFA-KD branch projectors: student stage features -> logits (MindSpore).

CNN student, stage s (feature (B, C, H, W)), D = max(D_s, D_t):
    s < 4: 4 - s ``SepConv`` (each halves H, W; channels double, the last gives D); s = 4: 1x1 conv to
    D with bias; then global average pool, flatten, Linear(D -> classes).
Token student (feature (B, prefix + L, C), L = g*g):
    ``TokenFnContext``: the prefix tokens are lifted off, m = max(floor(log2(g / 7)), 0)
    ``PatchMerging`` layers bring the grid to 7x7 (first to D_s with GELU, later D_s -> D_s, the
    last of several without activation; a grid already at or below 7x7 whose width differs from
    D_s gets a bias-free Linear(C -> D_s) instead, a deviation: the official code cannot build that
    case), the prefix tokens are re-attached; max(4 - s, 1)
    transformer blocks (dim D_s, 4 heads, no qkv bias, LayerNorm eps 1e-5); the CLS token
    (prefix > 0) or the token mean; Linear(D_s -> classes).
Initialisation as the official ``init_weights``: convs kaiming-normal (fan_out, relu), BN 1/0,
Linear trunc-normal 0.02 with zero bias.  Parameter names mirror ``nn.Sequential`` indices of the
official code (``0.op.0.weight`` ...), so the PyTorch twin converts with the generic rules.
"""
import math

from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Uniform

from ..layers import Attention, Mlp, dense, layer_norm

FINAL_GRID = 7


def _conv(cin, cout, k, stride=1, groups=1, bias=False):
    kw = {"bias_init": Uniform(1.0 / math.sqrt(cin // groups * k * k))} if bias else {}
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=k // 2, group=groups, has_bias=bias,
                     weight_init=HeNormal(mode="fan_out", nonlinearity="relu"), **kw)


class SepConv(nn.Cell):
    """dw3x3/2 -> pw1x1 -> BN -> ReLU -> dw3x3 -> pw1x1 (to ``cout``) -> BN -> ReLU; (B, cin, H, W) ->
    (B, cout, H/2, W/2).  Children ``op.0`` .. ``op.7``."""

    def __init__(self, cin, cout):
        super().__init__()
        self.op = nn.SequentialCell([
            _conv(cin, cin, 3, 2, groups=cin), _conv(cin, cin, 1), nn.BatchNorm2d(cin, eps=1e-5, momentum=0.9),
            nn.ReLU(),
            _conv(cin, cin, 3, 1, groups=cin), _conv(cin, cout, 1), nn.BatchNorm2d(cout, eps=1e-5, momentum=0.9),
            nn.ReLU()])

    def construct(self, x):
        return self.op(x)


class GlobalAvgPool(nn.Cell):
    """(B, C, H, W) -> (B, C): AdaptiveAvgPool2d(1) followed by Flatten."""

    def construct(self, x):
        return ops.mean(x, (2, 3))


class CNNProjector(nn.SequentialCell):
    """Stage ``stage`` of a CNN student with ``in_chans`` channels -> ``num_classes`` logits."""

    def __init__(self, stage, in_chans, dim, num_classes):
        if stage != 4:
            layers, c = [], in_chans
            n = 4 - stage
            for i in range(n):
                layers.append(SepConv(c, dim if i == n - 1 else c * 2))
                c *= 2
        else:
            layers = [_conv(in_chans, dim, 1, bias=True)]
        super().__init__(layers + [GlobalAvgPool(), dense(dim, num_classes)])


class PatchMerging(nn.Cell):
    """(B, H*W, C) -> (B, H*W/4, out_dim): 2x2 neighbours concatenated as (0,0), (1,0), (0,1), (1,1)
    (row, column offsets), LayerNorm(4C) eps 1e-5, bias-free Linear, then GELU or nothing."""

    def __init__(self, input_resolution, dim, out_dim, act=True):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        h, w = self.input_resolution
        if h % 2 or w % 2:
            raise ValueError(f"OFA PatchMerging: grid {h}x{w} is not even")
        self.norm = layer_norm(4 * dim, 1e-5)
        self.reduction = dense(4 * dim, out_dim, bias=False)
        self.act = nn.GELU(approximate=False) if act else nn.Identity()

    def construct(self, x):
        h, w = self.input_resolution
        b, n, c = x.shape
        if n != h * w:
            raise ValueError(f"OFA PatchMerging: {n} tokens, expected {h}x{w}")
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 4, 2, 5).reshape(b, n // 4, 4 * c)
        return self.act(self.reduction(self.norm(x)))


class TokenFnContext(nn.Cell):
    """Apply ``fn`` to the patch tokens only: the first ``token_num`` tokens pass through unchanged."""

    def __init__(self, token_num, fn):
        super().__init__()
        self.token_num = token_num
        self.fn = fn

    def construct(self, x):
        if self.token_num == 0:
            return self.fn(x)
        return ops.concat((x[:, :self.token_num], self.fn(x[:, self.token_num:])), axis=1)


class ProjectorBlock(nn.Cell):
    """timm 0.6.5 ``Block(dim, num_heads=4)``: pre-norm attention (no qkv bias) and MLP x4, LayerNorm eps 1e-5."""

    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.norm1 = layer_norm(dim, 1e-5)
        self.attn = Attention(dim, num_heads, qkv_bias=False)
        self.norm2 = layer_norm(dim, 1e-5)
        self.mlp = Mlp(dim, dim * 4)

    def construct(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class FirstToken(nn.Cell):
    """(B, N, C) -> (B, C): the class token (``TokenFilter(1, remove_mode=False)`` + Flatten)."""

    def construct(self, x):
        return x[:, 0]


class TokenMean(nn.Cell):
    """(B, N, C) -> (B, C): mean over tokens (``GAP1d``)."""

    def construct(self, x):
        return x.mean(1)


def merge_count(grid):
    """Number of 2x2 merges that bring a ``grid`` x ``grid`` token map down to 7x7 (official rule)."""
    return max(int(math.log2(grid / FINAL_GRID)), 0)


class TokenProjector(nn.SequentialCell):
    """Stage ``stage`` of a token student: (B, token_num + patch_num, embed_dim) -> logits."""

    def __init__(self, stage, patch_num, embed_dim, student_dim, num_classes, token_num):
        if token_num not in (0, 1):
            raise ValueError(f"OFA token projector supports 0 or 1 prefix tokens, got token_num={token_num}")
        grid = int(round(patch_num ** 0.5))
        if grid * grid != patch_num:
            raise ValueError(f"OFA token projector: {patch_num} patch tokens do not form a square grid")
        m = merge_count(grid)
        mergers = []
        for i in range(m):
            res = (grid // 2 ** i, grid // 2 ** i)
            mergers.append(PatchMerging(res, embed_dim if i == 0 else student_dim, student_dim,
                                        act=(i == 0 or i != m - 1)))
        if mergers:
            fn = nn.SequentialCell(mergers)
        elif embed_dim != student_dim:  # not in the official code, which fails here (see docs/ofakd.md)
            fn = dense(embed_dim, student_dim, bias=False)
        else:
            fn = nn.Identity()
        blocks = nn.SequentialCell([ProjectorBlock(student_dim) for _ in range(max(4 - stage, 1))])
        super().__init__([TokenFnContext(token_num, fn),
                          blocks, FirstToken() if token_num else TokenMean(), dense(student_dim, num_classes)])


def build_projector(stage, shape, student_dim, teacher_dim, num_classes, token_num=0):
    """The projector of ``stage`` for a student feature of ``shape`` ((C, H, W) CNN or (N, C) tokens)."""
    if len(shape) == 3:
        return CNNProjector(stage, shape[0], max(student_dim, teacher_dim), num_classes)
    if len(shape) == 2:
        return TokenProjector(stage, shape[0] - token_num, shape[1], student_dim, num_classes, token_num)
    raise ValueError(f"OFA projector: stage {stage} feature shape {shape} is neither (C, H, W) nor (N, C)")
