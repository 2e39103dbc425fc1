"""Small ConvNet for the Species196 CPU demo (the benchmark configs use the foundation's ResNet/ViT).

Parameter names (twin: ``pt_reference.species196.cnn``): ``features.<i>.conv.weight``,
``features.<i>.bn.*``, ``head.weight/bias``. Each stage is conv3x3 (stride 1 for the first, 2 for
the others, no bias) + BatchNorm + ReLU; then global average pooling and a linear classifier.
Input (B, 3, H, W) float32 -> logits (B, num_classes).
"""
from mindspore import nn, ops

from ms_models.layers import dense
from ms_models.registry import register_model


class ConvBNReLU(nn.Cell):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, pad_mode="pad", padding=1, has_bias=False,
                              weight_init="HeNormal")
        self.bn = nn.BatchNorm2d(cout, momentum=0.9, eps=1e-5)
        self.act = nn.ReLU()

    def construct(self, x):
        return self.act(self.bn(self.conv(x)))


class SmallConvNet(nn.Cell):
    """(B, 3, H, W) -> (B, num_classes) through ``widths`` stages."""

    def __init__(self, num_classes=196, widths=(32, 64, 128, 256), in_chans=3):
        super().__init__()
        cells, cin = [], in_chans
        for i, w in enumerate(widths):
            cells.append(ConvBNReLU(cin, w, 1 if i == 0 else 2))
            cin = w
        self.features = nn.SequentialCell(cells)
        self.num_features = cin
        self.head = dense(cin, num_classes)

    def forward_features(self, x):
        return ops.mean(self.features(x), axis=(2, 3))

    def construct(self, x):
        return self.head(self.forward_features(x))


@register_model
def species196_cnn(num_classes=196, widths=(32, 64, 128, 256), in_chans=3, **kwargs):
    """Small 4-stage ConvNet of the Species196 demo (kwargs: num_classes, widths, in_chans)."""
    if kwargs.pop("drop_path_rate", 0.0):
        raise ValueError("species196_cnn has no stochastic depth; set model.drop_path_rate: 0")
    if kwargs:
        raise TypeError(f"species196_cnn: unexpected arguments {sorted(kwargs)}")
    return SmallConvNet(num_classes, tuple(widths), in_chans)
