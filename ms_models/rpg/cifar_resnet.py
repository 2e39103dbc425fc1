"""CIFAR ResNet (He et al. 2016, Sec. 4.2), the MindSpore twin of ``pt_reference/rpg/cifar_resnet.py``:
3x3 stem, three stages of BasicBlocks at widths w, 2w, 4w, 1x1-conv shortcuts where the shape
changes, global average pool, linear classifier; depth 6n + 2. timm ResNet names (conv1, bn1,
layer1..3, ``downsample.0/1``, fc). Input (B, 3, H, W) float32, logits (B, num_classes).
"""
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal

from ..registry import register_model


def _conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=k // 2, has_bias=False,
                     weight_init=HeNormal(mode="fan_out", nonlinearity="relu"))


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.9)  # MindSpore momentum = 1 - torch's 0.1


class BasicBlock(nn.Cell):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = _bn(planes)
        self.act1 = nn.ReLU()
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = _bn(planes)
        self.act2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.SequentialCell([_conv(inplanes, planes, 1, stride), _bn(planes)])

    def construct(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class CifarResNet(nn.Cell):
    """Args: depth (6n + 2), num_classes, width (channels of the first stage), in_chans."""

    def __init__(self, depth=20, num_classes=10, width=16, in_chans=3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.conv1 = _conv(in_chans, width, 3)
        self.bn1 = _bn(width)
        self.act1 = nn.ReLU()
        inplanes = width
        for stage in range(3):
            planes = width * 2 ** stage
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(inplanes, planes, 2 if (stage > 0 and i == 0) else 1))
                inplanes = planes
            setattr(self, f"layer{stage + 1}", nn.SequentialCell(blocks))
        self.num_features = inplanes
        self.fc = nn.Dense(inplanes, num_classes)

    def construct(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(ops.mean(x, (2, 3)))


@register_model
def rpg_cifar_resnet8(**kwargs):
    """CIFAR ResNet-8 (kwargs: num_classes, width, in_chans)."""
    return CifarResNet(8, **kwargs)


@register_model
def rpg_cifar_resnet20(**kwargs):
    """CIFAR ResNet-20 (kwargs: num_classes, width, in_chans)."""
    return CifarResNet(20, **kwargs)


@register_model
def rpg_cifar_resnet56(**kwargs):
    """CIFAR ResNet-56 (kwargs: num_classes, width, in_chans)."""
    return CifarResNet(56, **kwargs)
