"""EDSR (Lim et al. 2017) with BasicSR parameter names; the MindSpore twin of
``pt_reference/dukd/edsr.py``.

Input: float32 (B, 3, h, w) RGB in [0, 1]; output (B, 3, s*h, s*w), not clamped.
"""
from mindspore import nn

from ms_models.registry import register_model

from .common import DIV2K_RGB_MEAN, MeanShift, Upsample, conv


class ResidualBlockNoBN(nn.Cell):
    """conv3x3 - ReLU - conv3x3, scaled by ``res_scale`` and added to the input."""

    def __init__(self, num_feat=64, res_scale=1.0):
        super().__init__()
        self.res_scale = float(res_scale)
        self.conv1 = conv(num_feat, num_feat)
        self.conv2 = conv(num_feat, num_feat)
        self.relu = nn.ReLU()

    def construct(self, x):
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class EDSR(nn.Cell):
    """conv_first -> ``num_block`` residual blocks -> conv_after_body (+ skip) -> Upsample -> conv_last."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, res_scale=1.0,
                 img_range=255.0, rgb_mean=DIV2K_RGB_MEAN):
        super().__init__()
        self.upscale = upscale
        self.shift = MeanShift(img_range, tuple(rgb_mean), num_in_ch)
        self.conv_first = conv(num_in_ch, num_feat)
        self.body = nn.SequentialCell([ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block)])
        self.conv_after_body = conv(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = conv(num_feat, num_out_ch)

    def construct(self, x):
        x = self.conv_first(self.shift.sub(x))
        res = self.conv_after_body(self.body(x)) + x
        return self.shift.add(self.conv_last(self.upsample(res)))


@register_model
def edsr(**kw):
    """BasicSR EDSR; keyword arguments as :class:`EDSR`."""
    return EDSR(**kw)
