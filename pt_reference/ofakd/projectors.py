"""OFA-KD branch projectors, PyTorch twin of ``ms_models.ofakd.projectors`` (official ``distillers/ofa.py``
and ``distillers/utils.py`` structure; timm ``Block`` with torch LayerNorm eps 1e-5 as in timm 0.6.5)."""
import math

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

FINAL_GRID = 7


class SepConv(nn.Module):
    """dw3x3/2 -> pw1x1 -> BN -> ReLU -> dw3x3 -> pw1x1 -> BN -> ReLU (children ``op.0`` .. ``op.7``)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), nn.Conv2d(cin, cin, 1, bias=False),
            nn.BatchNorm2d(cin), nn.ReLU(inplace=False),
            nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=False))

    def forward(self, x):
        return self.op(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


class CNNProjector(nn.Sequential):
    def __init__(self, stage, in_chans, dim, num_classes):
        if stage != 4:
            layers, c, n = [], in_chans, 4 - stage
            for i in range(n):
                layers.append(SepConv(c, dim if i == n - 1 else c * 2))
                c *= 2
        else:
            layers = [nn.Conv2d(in_chans, dim, 1, 1, 0)]
        super().__init__(*layers, GlobalAvgPool(), nn.Linear(dim, num_classes))


class PatchMerging(nn.Module):
    """(B, H*W, C) -> (B, H*W/4, out_dim); concatenation order (0,0), (1,0), (0,1), (1,1)."""

    def __init__(self, input_resolution, dim, out_dim, act=True):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x):
        h, w = self.input_resolution
        b, n, c = x.shape
        if n != h * w:
            raise ValueError(f"OFA PatchMerging: {n} tokens, expected {h}x{w}")
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.act(self.reduction(self.norm(x.view(b, -1, 4 * c))))


class TokenFnContext(nn.Module):
    def __init__(self, token_num, fn):
        super().__init__()
        self.token_num = token_num
        self.fn = fn

    def forward(self, x):
        if self.token_num == 0:
            return self.fn(x)
        return torch.cat([x[:, :self.token_num], self.fn(x[:, self.token_num:])], dim=1)


class FirstToken(nn.Module):
    def forward(self, x):
        return x[:, 0]


class TokenMean(nn.Module):
    def forward(self, x):
        return x.mean(1)


def merge_count(grid):
    return max(int(math.log2(grid / FINAL_GRID)), 0)


class TokenProjector(nn.Sequential):
    def __init__(self, stage, patch_num, embed_dim, student_dim, num_classes, token_num):
        if token_num not in (0, 1):
            raise ValueError(f"OFA token projector supports 0 or 1 prefix tokens, got token_num={token_num}")
        grid = int(round(patch_num ** 0.5))
        if grid * grid != patch_num:
            raise ValueError(f"OFA token projector: {patch_num} patch tokens do not form a square grid")
        m = merge_count(grid)
        mergers = [PatchMerging((grid // 2 ** i,) * 2, embed_dim if i == 0 else student_dim, student_dim,
                                act=(i == 0 or i != m - 1)) for i in range(m)]
        if mergers:
            fn = nn.Sequential(*mergers)
        elif embed_dim != student_dim:  # deviation: the official code cannot build this case
            fn = nn.Linear(embed_dim, student_dim, bias=False)
        else:
            fn = nn.Identity()
        blocks = nn.Sequential(*[Block(student_dim, num_heads=4, norm_layer=nn.LayerNorm)
                                 for _ in range(max(4 - stage, 1))])
        super().__init__(TokenFnContext(token_num, fn), blocks,
                         FirstToken() if token_num else TokenMean(), nn.Linear(student_dim, num_classes))


def init_weights(module):
    """Official ``init_weights``: conv kaiming-normal (fan_out, relu), BN 1/0, Linear trunc-normal 0.02 / 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_projector(stage, shape, student_dim, teacher_dim, num_classes, token_num=0):
    if len(shape) == 3:
        proj = CNNProjector(stage, shape[0], max(student_dim, teacher_dim), num_classes)
    elif len(shape) == 2:
        proj = TokenProjector(stage, shape[0] - token_num, shape[1], student_dim, num_classes, token_num)
    else:
        raise ValueError(f"OFA projector: stage {stage} feature shape {shape} is neither (C, H, W) nor (N, C)")
    init_weights(proj)
    return proj
