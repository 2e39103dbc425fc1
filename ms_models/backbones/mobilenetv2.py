"""MobileNetV2, the MindSpore twin of timm's ``mobilenetv2_*`` (``EfficientNet`` class; same names/numerics).

Names: conv_stem, bn1, blocks.s.i (stage 0: DepthwiseSeparableConv conv_dw/bn1/conv_pw/bn2; later:
InvertedResidual conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3), conv_head, bn2, classifier.  ReLU6 after
bn1/bn2 of the blocks, the stem and the head; linear bottlenecks; residual when the stride is 1 and
the width is unchanged.  A timm state_dict converts with the generic BN rules of
``common.weights``.  ``forward_blocks`` gives the 17 block outputs plus the head map, the taps used
by OFA-KD; ``forward_intermediates`` the timm feature levels.  Input (B, 3, H, W) float32.
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Uniform

from ..layers import DropPath, take_indices
from ..registry import register_model

# (expansion, channels, repeats, first stride) per stage; stage 0 is a depthwise-separable block.
ARCH = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(v, divisor=8, round_limit=0.9):
    """timm ``make_divisible``: nearest multiple of ``divisor``, never below ``round_limit * v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v


def conv(cin, cout, k, stride=1, groups=1):
    """Bias-free conv with timm's symmetric padding ((k - 1) // 2)."""
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=(k - 1) // 2, group=groups,
                     has_bias=False, weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.9)  # MindSpore momentum = 1 - torch's 0.1


class DepthwiseSeparableConv(nn.Cell):
    """dw3x3 -> BN -> ReLU6 -> pw1x1 -> BN (no activation), residual when shapes allow."""

    def __init__(self, cin, cout, stride=1, drop_path=0.0):
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = conv(cin, cin, 3, stride, groups=cin)
        self.bn1 = bn(cin)
        self.act1 = nn.ReLU6()
        self.conv_pw = conv(cin, cout, 1)
        self.bn2 = bn(cout)
        self.drop_path = DropPath(drop_path)

    def construct(self, x):
        y = self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x)))))
        return self.drop_path(y) + x if self.has_skip else y


class InvertedResidual(nn.Cell):
    """pw1x1 expand -> BN -> ReLU6 -> dw3x3 (stride) -> BN -> ReLU6 -> pw1x1 project -> BN, residual when
    the stride is 1 and the width is unchanged."""

    def __init__(self, cin, cout, stride, exp_ratio, drop_path=0.0):
        super().__init__()
        mid = make_divisible(cin * exp_ratio)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = conv(cin, mid, 1)
        self.bn1 = bn(mid)
        self.act1 = nn.ReLU6()
        self.conv_dw = conv(mid, mid, 3, stride, groups=mid)
        self.bn2 = bn(mid)
        self.act2 = nn.ReLU6()
        self.conv_pwl = conv(mid, cout, 1)
        self.bn3 = bn(cout)
        self.drop_path = DropPath(drop_path)

    def construct(self, x):
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return self.drop_path(y) + x if self.has_skip else y


class MobileNetV2(nn.Cell):
    """timm MobileNetV2 (``_gen_mobilenet_v2`` with fix_stem_head=False).

    Args:
        channel_multiplier: width multiplier (1.0 for ``mobilenetv2_100``); widths rounded to multiples of 8.
        num_classes: classifier width; 0 gives no classifier (``construct`` returns pooled features).
        in_chans: input channels.
        drop_path_rate: stochastic depth, ``rate * block_index / 17`` (timm's block rule).
    """

    def __init__(self, channel_multiplier=1.0, num_classes=1000, in_chans=3, drop_path_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        stem = make_divisible(32 * channel_multiplier)
        self.num_features = max(1280, make_divisible(1280 * channel_multiplier))
        self.conv_stem = conv(in_chans, stem, 3, 2)
        self.bn1 = bn(stem)
        self.act1 = nn.ReLU6()
        total = sum(a[2] for a in ARCH)
        index, cin, stages = 0, stem, []
        for s, (exp, ch, reps, stride) in enumerate(ARCH):
            cout = make_divisible(ch * channel_multiplier)
            blocks = []
            for i in range(reps):
                rate = drop_path_rate * index / total
                st = stride if i == 0 else 1
                blocks.append(DepthwiseSeparableConv(cin, cout, st, rate) if s == 0
                              else InvertedResidual(cin, cout, st, exp, rate))
                cin, index = cout, index + 1
            stages.append(nn.SequentialCell(blocks))
        self.blocks = nn.SequentialCell(stages)
        self.conv_head = conv(cin, self.num_features, 1)
        self.bn2 = bn(self.num_features)
        self.act2 = nn.ReLU6()
        bound = 1.0 / self.num_features ** 0.5
        self.classifier = (nn.Dense(self.num_features, num_classes, weight_init=Uniform(bound), bias_init="zeros")
                           if num_classes > 0 else nn.Identity())

    def stem(self, x):
        return self.act1(self.bn1(self.conv_stem(x)))

    def head_map(self, x):
        """Last block output -> head map (B, num_features, H/32, W/32) (conv_head, bn2, ReLU6)."""
        return self.act2(self.bn2(self.conv_head(x)))

    def forward_features(self, x):
        """(B, C, H, W) -> head map (B, num_features, H/32, W/32)."""
        return self.head_map(self.blocks(self.stem(x)))

    def forward_head(self, x, pre_logits=False):
        """Global average pool (B, num_features) and, unless ``pre_logits``, the classifier."""
        x = ops.mean(x, (2, 3))
        return x if pre_logits else self.classifier(x)

    def forward_blocks(self, x):
        """The output of every block in order (17 for MobileNetV2) followed by the head map."""
        x = self.stem(x)
        feats = []
        for stage in self.blocks:
            for blk in stage:
                x = blk(x)
                feats.append(x)
        feats.append(self.head_map(x))
        return feats

    def forward_intermediates(self, x, indices=None, intermediates_only=False):
        """timm ``forward_intermediates``: levels 0..4 are the ends of block stages 0, 1, 2, 4 and 6
        (strides 2, 4, 8, 16, 32).  Returns ``(head_map, [selected])`` or, with ``intermediates_only``, the list."""
        taken, _ = take_indices(5, indices)
        x = self.stem(x)
        levels = []
        for s, stage in enumerate(self.blocks):
            x = stage(x)
            if s in (0, 1, 2, 4, 6):
                levels.append(x)
        picked = [levels[i] for i in taken]
        return picked if intermediates_only else (self.head_map(x), picked)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


@register_model
def mobilenetv2_100(**kwargs):
    """MobileNetV2 1.0 (kwargs: num_classes, in_chans, drop_path_rate)."""
    return MobileNetV2(channel_multiplier=1.0, **kwargs)
