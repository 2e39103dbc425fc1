"""ResNet-18/34/50/101, the MindSpore twin of timm's ``resnet`` (same parameter names and numerics).

Names: conv1, bn1, layer1..layer4 (blocks ``layerS.i`` with conv1/bn1/conv2/bn2[/conv3/bn3] and
``downsample.0`` conv / ``downsample.1`` BN), fc.  A timm state_dict converts with the generic rules
of ``common.weights`` and loads strictly.  Input (B, 3, H, W) float32, logits (B, num_classes).
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal

from ..layers import DropPath, take_indices
from ..registry import register_model


def _conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=k // 2, has_bias=False,
                     weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def _bn(c, zero_gamma=False):
    # MindSpore momentum is the weight of the old statistic: 1 - torch's 0.1.
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.9, gamma_init="zeros" if zero_gamma else "ones")


class BasicBlock(nn.Cell):
    """Two 3x3 convs with a residual; (B, inplanes, H, W) -> (B, planes, H/stride, W/stride)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, drop_path=0.0):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = _bn(planes)
        self.act1 = nn.ReLU()
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes, zero_gamma=True)
        self.act2 = nn.ReLU()
        self.downsample = downsample
        self.drop_path = DropPath(drop_path)

    def construct(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(self.drop_path(x) + shortcut)


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (stride here, ResNet v1.5) -> 1x1 x4; (B, inplanes, H, W) -> (B, 4*planes, H/s, W/s)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, drop_path=0.0):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = _bn(planes)
        self.act1 = nn.ReLU()
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = _bn(planes)
        self.act2 = nn.ReLU()
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = _bn(planes * 4, zero_gamma=True)
        self.act3 = nn.ReLU()
        self.downsample = downsample
        self.drop_path = DropPath(drop_path)

    def construct(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return self.act3(self.drop_path(x) + shortcut)


class _StemMaxPool(nn.Cell):
    """3x3 / stride 2 max pooling with 1 pixel of padding, written as zero padding plus a 'valid'
    pool. Equal to torch's -inf padding here because the input is a ReLU output (>= 0); unlike
    ``nn.MaxPool2d(pad_mode='pad')`` (MaxPool3DWithArgmax) it has an ONNX converter."""

    def __init__(self):
        super().__init__()
        self.pad = ops.Pad(((0, 0), (0, 0), (1, 1), (1, 1)))
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")

    def construct(self, x):
        return self.pool(self.pad(x))


class ResNet(nn.Cell):
    """timm ResNet with the plain 7x7 stem and conv downsampling.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
        num_classes: classifier width; 0 gives no classifier (``construct`` returns pooled features).
        in_chans: input channels.
        drop_path_rate: stochastic depth, rising linearly from 0 to this value over all blocks.
    """

    def __init__(self, block, layers, num_classes=1000, in_chans=3, drop_path_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = _conv(in_chans, 64, 7, stride=2)
        self.bn1 = _bn(64)
        self.act1 = nn.ReLU()
        self.maxpool = _StemMaxPool()
        total, index, inplanes = sum(layers), 0, 64
        for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if stage == 0 else 2
            blocks = []
            for i in range(depth):
                downsample = None
                if i == 0 and (stride != 1 or inplanes != planes * block.expansion):
                    downsample = nn.SequentialCell([_conv(inplanes, planes * block.expansion, 1, stride),
                                                    _bn(planes * block.expansion)])
                rate = drop_path_rate * index / (total - 1)
                blocks.append(block(inplanes, planes, stride if i == 0 else 1, downsample, rate))
                inplanes = planes * block.expansion
                index += 1
            setattr(self, f"layer{stage + 1}", nn.SequentialCell(blocks))
        self.num_features = inplanes
        self.fc = nn.Dense(inplanes, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x):
        """(B, C, H, W) -> final feature map (B, num_features, H/32, W/32)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x, pre_logits=False):
        """Global average pool (B, num_features) and, unless ``pre_logits``, the classifier."""
        x = ops.mean(x, (2, 3))
        return x if pre_logits else self.fc(x)

    def forward_intermediates(self, x, indices=None, intermediates_only=False):
        """timm ``forward_intermediates``: features 0..4 are the stem (after act1) and layer1..4.

        Returns ``(final_map, [selected features])`` or, with ``intermediates_only``, the list.
        """
        taken, _ = take_indices(5, indices)
        x = self.act1(self.bn1(self.conv1(x)))
        feats = [x]
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        picked = [feats[i] for i in taken]
        return picked if intermediates_only else (x, picked)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


@register_model
def resnet18(**kwargs):
    """ResNet-18 (kwargs: num_classes, in_chans, drop_path_rate)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs):
    """ResNet-34 (kwargs: num_classes, in_chans, drop_path_rate)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs):
    """ResNet-50 (kwargs: num_classes, in_chans, drop_path_rate)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet101(**kwargs):
    """ResNet-101 (kwargs: num_classes, in_chans, drop_path_rate)."""
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)
