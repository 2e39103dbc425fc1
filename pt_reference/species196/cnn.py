"""Small ConvNet of the Species196 demo (PyTorch twin of ``ms_models.species196.cnn``)."""
import torch
from torch import nn

from pt_reference.registry import register_model


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5)
        self.act = nn.ReLU()
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SmallConvNet(nn.Module):
    def __init__(self, num_classes=196, widths=(32, 64, 128, 256), in_chans=3):
        super().__init__()
        cells, cin = [], in_chans
        for i, w in enumerate(widths):
            cells.append(ConvBNReLU(cin, w, 1 if i == 0 else 2))
            cin = w
        self.features = nn.Sequential(*cells)
        self.num_features = cin
        self.head = nn.Linear(cin, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, x):
        return torch.mean(self.features(x), dim=(2, 3))

    def forward(self, x):
        return self.head(self.forward_features(x))


@register_model
def species196_cnn(num_classes=196, widths=(32, 64, 128, 256), in_chans=3, **kwargs):
    """Small 4-stage ConvNet of the Species196 demo (kwargs: num_classes, widths, in_chans)."""
    if kwargs.pop("drop_path_rate", 0.0):
        raise ValueError("species196_cnn has no stochastic depth; set model.drop_path_rate: 0")
    if kwargs:
        raise TypeError(f"species196_cnn: unexpected arguments {sorted(kwargs)}")
    return SmallConvNet(num_classes, tuple(widths), in_chans)
