"""ConvNeXt, the MindSpore twin of timm's ``ConvNeXt`` (conv_mlp=False; same names and numerics).

Names: stem.0 (4x4/4 conv), stem.1 (LayerNorm2d), stages.i.[downsample.0 (LayerNorm2d), downsample.1
(2x2/2 conv)], stages.i.blocks.j.{conv_dw (7x7 depthwise), norm, mlp.{fc1, fc2}, gamma}, head.{norm,
fc}.  LayerNorm eps 1e-6, exact GELU, layer scale init 1e-6.  Input (B, 3, H, W) float32, H and W
multiples of 32.
"""
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from ..layers import DropPath, Mlp, dense, layer_norm, take_indices
from ..registry import register_model

LN_EPS = 1e-6


def _conv(cin, cout, k, stride=1, groups=1, padding=0):
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=padding, group=groups, has_bias=True,
                     weight_init=TruncatedNormal(0.02), bias_init="zeros")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (timm ``LayerNorm2d``; parameters gamma/beta)."""

    def __init__(self, dim, eps=LN_EPS):
        super().__init__((dim,), epsilon=eps)

    def construct(self, x):
        return super().construct(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


class ConvNeXtBlock(nn.Cell):
    """dw7x7 -> LayerNorm (channels last) -> MLP x4 -> layer scale ``gamma``, residual; (B, C, H, W)."""

    def __init__(self, dim, drop_path=0.0, ls_init_value=1e-6, mlp_ratio=4):
        super().__init__()
        self.conv_dw = _conv(dim, dim, 7, groups=dim, padding=3)
        self.norm = layer_norm(dim, LN_EPS)
        self.mlp = Mlp(dim, int(mlp_ratio * dim))
        self.gamma = Parameter(initializer(ls_init_value, (dim,)), name="gamma")
        self.drop_path = DropPath(drop_path)

    def construct(self, x):
        y = self.conv_dw(x).transpose(0, 2, 3, 1)
        y = self.mlp(self.norm(y)) * self.gamma
        return self.drop_path(y.transpose(0, 3, 1, 2)) + x


class ConvNeXtStage(nn.Cell):
    """Optional LayerNorm2d + 2x2/2 conv downsample, then ``depth`` blocks."""

    def __init__(self, cin, cout, depth, downsample, drop_path, ls_init_value):
        super().__init__()
        self.downsample = (nn.SequentialCell([LayerNorm2d(cin), _conv(cin, cout, 2, stride=2)]) if downsample
                           else nn.Identity())
        self.blocks = nn.SequentialCell([ConvNeXtBlock(cout, drop_path[i], ls_init_value) for i in range(depth)])

    def construct(self, x):
        return self.blocks(self.downsample(x))


class ConvNeXtHead(nn.Cell):
    """Global average pool, LayerNorm2d ``norm``, then ``fc`` (timm ``NormMlpClassifierHead``)."""

    def __init__(self, dim, num_classes):
        super().__init__()
        self.norm = layer_norm(dim, LN_EPS)
        self.fc = dense(dim, num_classes) if num_classes > 0 else nn.Identity()

    def construct(self, x, pre_logits=False):
        x = self.norm(ops.mean(x, (2, 3)))
        return x if pre_logits else self.fc(x)


class ConvNeXt(nn.Cell):
    """timm ConvNeXt with the patchify stem.

    Args:
        depths, dims: blocks and widths per stage.
        num_classes: classifier width; 0 gives no classifier.
        in_chans: input channels.
        drop_path_rate: stochastic depth, rising linearly from 0 over all blocks.
        ls_init_value: layer-scale initial value.
    """

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), num_classes=1000, in_chans=3,
                 drop_path_rate=0.0, ls_init_value=1e-6):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.stem = nn.SequentialCell([_conv(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0])])
        rates = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, start = [], 0
        for i, depth in enumerate(depths):
            stages.append(ConvNeXtStage(dims[max(i - 1, 0)], dims[i], depth, i > 0, rates[start:start + depth],
                                        ls_init_value))
            start += depth
        self.stages = nn.SequentialCell(stages)
        self.head = ConvNeXtHead(self.num_features, num_classes)

    def forward_features(self, x):
        """(B, C, H, W) -> final map (B, num_features, H/32, W/32)."""
        return self.stages(self.stem(x))

    def forward_head(self, x, pre_logits=False):
        return self.head(x, pre_logits)

    def forward_intermediates(self, x, indices=None, intermediates_only=False):
        """timm ``forward_intermediates``: the four stage outputs (NCHW)."""
        taken, _ = take_indices(len(self.stages), indices)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in taken:
                outs.append(x)
        return outs if intermediates_only else (x, outs)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


_VARIANTS = {
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
}


def _builder(name):
    def build(**kwargs):
        depths, dims = _VARIANTS[name]
        return ConvNeXt(**{"depths": depths, "dims": dims, **kwargs})

    build.__name__ = name
    build.__doc__ = f"ConvNeXt ``{name}`` (kwargs: num_classes, in_chans, drop_path_rate, depths, dims)."
    return build


for _name in _VARIANTS:
    register_model(_builder(_name))
