"""RCAN (Zhang et al. 2018) with BasicSR parameter names (``basicsr/archs/rcan_arch.py``).

Input: float32 (B, 3, h, w) RGB in [0, 1]; output (B, 3, s*h, s*w).
"""
from torch import nn

from pt_reference.registry import register_model

from .common import DIV2K_RGB_MEAN, MeanShift, Upsample


class ChannelAttention(nn.Module):
    """Squeeze-excitation: global mean -> 1x1 conv (C -> C/r) -> ReLU -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, num_feat, squeeze_factor=16):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // squeeze_factor, 1, padding=0), nn.ReLU(),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1, padding=0), nn.Sigmoid())

    def forward(self, x):
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block: conv - ReLU - conv - CA, times ``res_scale``, plus input."""

    def __init__(self, num_feat, squeeze_factor=16, res_scale=1.0):
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1), ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x):
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    """``num_block`` RCABs and a conv3x3, plus the group input."""

    def __init__(self, num_feat, num_block, squeeze_factor=16, res_scale=1.0):
        super().__init__()
        self.residual_group = nn.Sequential(*[RCAB(num_feat, squeeze_factor, res_scale) for _ in range(num_block)])
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        return self.conv(self.residual_group(x)) + x


class RCAN(nn.Module):
    """conv_first -> ``num_group`` residual groups -> conv_after_body (+ skip) -> Upsample -> conv_last."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_group=10, num_block=16, squeeze_factor=16,
                 upscale=4, res_scale=1.0, img_range=255.0, rgb_mean=DIV2K_RGB_MEAN):
        super().__init__()
        self.upscale = upscale
        self.shift = MeanShift(img_range, tuple(rgb_mean), num_in_ch)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualGroup(num_feat, num_block, squeeze_factor, res_scale)
                                    for _ in range(num_group)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x):
        x = self.conv_first(self.shift.sub(x))
        res = self.conv_after_body(self.body(x)) + x
        return self.shift.add(self.conv_last(self.upsample(res)))


@register_model
def rcan(**kw):
    """BasicSR RCAN; keyword arguments as :class:`RCAN`."""
    return RCAN(**kw)
