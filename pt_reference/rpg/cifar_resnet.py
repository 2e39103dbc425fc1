"""CIFAR ResNet (He et al. 2016, Sec. 4.2): 3x3 stem, three stages of BasicBlocks at widths w, 2w, 4w,
1x1-conv shortcuts where the shape changes, global average pool, linear classifier; depth 6n + 2.

Names follow timm's ResNet (conv1, bn1, layer1..3, ``layerS.i.conv1/bn1/conv2/bn2``,
``downsample.0`` / ``downsample.1``, fc), so the RPG pruner, the converter and the reports treat it
like the ImageNet ResNets. Input (B, 3, H, W) float32, logits (B, num_classes).
"""
import torch
from torch import nn

from ..registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class CifarResNet(nn.Module):
    """Args: depth (6n + 2), num_classes, width (channels of the first stage), in_chans."""

    def __init__(self, depth=20, num_classes=10, width=16, in_chans=3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU()
        inplanes = width
        for stage in range(3):
            planes = width * 2 ** stage
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(inplanes, planes, 2 if (stage > 0 and i == 0) else 1))
                inplanes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.num_features = inplanes
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.mean(x, dim=(2, 3)))


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
