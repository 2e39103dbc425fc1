"""ResMLP, the MindSpore twin of timm's ``MlpMixer`` built with ``ResBlock`` and ``Affine`` (same names).

Names: stem.proj, blocks.i.{ls1, ls2, norm1.{alpha, beta}, linear_tokens, norm2.{alpha, beta},
mlp_channels.{fc1, fc2}}, norm.{alpha, beta}, head.  ``Affine`` is ``beta + alpha * x`` with
(1, 1, C) parameters; layer-scale init 1e-4 (ResMLP-12) / 1e-5 (ResMLP-24, -36).  Input
(B, 3, img_size, img_size) float32.
"""
from mindspore import Parameter, nn
from mindspore.common.initializer import initializer

from ..layers import DropPath, Mlp, dense
from ..registry import register_model
from .mlp_mixer import TokenMlpNet


class Affine(nn.Cell):
    """Per-channel ``beta + alpha * x`` on (B, N, C); parameters alpha (ones) and beta (zeros), (1, 1, C)."""

    def __init__(self, dim):
        super().__init__()
        self.alpha = Parameter(initializer("ones", (1, 1, dim)), name="alpha")
        self.beta = Parameter(initializer("zeros", (1, 1, dim)), name="beta")

    def construct(self, x):
        return self.beta + self.alpha * x


class ResBlock(nn.Cell):
    """Affine, linear token mixing and a channel MLP, each residual branch scaled by a layer scale."""

    def __init__(self, dim, seq_len, mlp_ratio=4.0, init_values=1e-4, drop_path=0.0):
        super().__init__()
        self.norm1 = Affine(dim)
        self.linear_tokens = dense(seq_len, seq_len)
        self.drop_path = DropPath(drop_path)
        self.norm2 = Affine(dim)
        self.mlp_channels = Mlp(dim, int(dim * mlp_ratio))
        self.ls1 = Parameter(initializer(init_values, (dim,)), name="ls1")
        self.ls2 = Parameter(initializer(init_values, (dim,)), name="ls2")

    def construct(self, x):
        x = x + self.drop_path(self.ls1 * self.linear_tokens(self.norm1(x).swapaxes(1, 2)).swapaxes(1, 2))
        return x + self.drop_path(self.ls2 * self.mlp_channels(self.norm2(x)))


class ResMlp(TokenMlpNet):
    """timm ResMLP (``MlpMixer`` with ResBlock / Affine).

    Args:
        img_size, patch_size, in_chans: input geometry.
        num_classes: classifier width; 0 gives no classifier.
        embed_dim, num_blocks, mlp_ratio, init_values: architecture and layer-scale init.
        drop_path_rate: stochastic depth, the same rate in every block (as timm).
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=384, num_blocks=12,
                 mlp_ratio=4.0, init_values=1e-4, drop_path_rate=0.0):
        super().__init__(img_size, patch_size, in_chans, num_classes, embed_dim)
        seq_len = self.stem.num_patches
        self.blocks = nn.SequentialCell([ResBlock(embed_dim, seq_len, mlp_ratio, init_values, float(drop_path_rate))
                                         for _ in range(num_blocks)])
        self.norm = Affine(embed_dim)


@register_model
def resmlp_12_224(**kwargs):
    """ResMLP-S12 (kwargs: num_classes, img_size, drop_path_rate, num_blocks, embed_dim)."""
    return ResMlp(**{"patch_size": 16, "num_blocks": 12, "embed_dim": 384, "init_values": 1e-4, **kwargs})


@register_model
def resmlp_24_224(**kwargs):
    """ResMLP-S24 (kwargs: num_classes, img_size, drop_path_rate, num_blocks, embed_dim)."""
    return ResMlp(**{"patch_size": 16, "num_blocks": 24, "embed_dim": 384, "init_values": 1e-5, **kwargs})
