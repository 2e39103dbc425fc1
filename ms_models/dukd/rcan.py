"""RCAN (Zhang et al. 2018) with BasicSR parameter names; the MindSpore twin of
``pt_reference/dukd/rcan.py``.

Input: float32 (B, 3, h, w) RGB in [0, 1]; output (B, 3, s*h, s*w).
"""
from mindspore import nn, ops

from ms_models.registry import register_model

from .common import DIV2K_RGB_MEAN, MeanShift, Upsample, conv


class GlobalAvgPool(nn.Cell):
    """torch ``nn.AdaptiveAvgPool2d(1)``: (B, C, H, W) -> (B, C, 1, 1)."""

    def construct(self, x):
        return ops.mean(x, (2, 3), keep_dims=True)


class ChannelAttention(nn.Cell):
    """Squeeze-excitation: global mean -> 1x1 conv (C -> C/r) -> ReLU -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, num_feat, squeeze_factor=16):
        super().__init__()
        self.attention = nn.SequentialCell([GlobalAvgPool(), conv(num_feat, num_feat // squeeze_factor, 1), nn.ReLU(),
                                            conv(num_feat // squeeze_factor, num_feat, 1), nn.Sigmoid()])

    def construct(self, x):
        return x * self.attention(x)


class RCAB(nn.Cell):
    """Residual channel attention block: conv - ReLU - conv - CA, times ``res_scale``, plus input."""

    def __init__(self, num_feat, squeeze_factor=16, res_scale=1.0):
        super().__init__()
        self.res_scale = float(res_scale)
        self.rcab = nn.SequentialCell([conv(num_feat, num_feat), nn.ReLU(), conv(num_feat, num_feat),
                                       ChannelAttention(num_feat, squeeze_factor)])

    def construct(self, x):
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Cell):
    """``num_block`` RCABs and a conv3x3, plus the group input."""

    def __init__(self, num_feat, num_block, squeeze_factor=16, res_scale=1.0):
        super().__init__()
        self.residual_group = nn.SequentialCell([RCAB(num_feat, squeeze_factor, res_scale) for _ in range(num_block)])
        self.conv = conv(num_feat, num_feat)

    def construct(self, x):
        return self.conv(self.residual_group(x)) + x


class RCAN(nn.Cell):
    """conv_first -> ``num_group`` residual groups -> conv_after_body (+ skip) -> Upsample -> conv_last."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_group=10, num_block=16, squeeze_factor=16,
                 upscale=4, res_scale=1.0, img_range=255.0, rgb_mean=DIV2K_RGB_MEAN):
        super().__init__()
        self.upscale = upscale
        self.shift = MeanShift(img_range, tuple(rgb_mean), num_in_ch)
        self.conv_first = conv(num_in_ch, num_feat)
        self.body = nn.SequentialCell([ResidualGroup(num_feat, num_block, squeeze_factor, res_scale)
                                       for _ in range(num_group)])
        self.conv_after_body = conv(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = conv(num_feat, num_out_ch)

    def construct(self, x):
        x = self.conv_first(self.shift.sub(x))
        res = self.conv_after_body(self.body(x)) + x
        return self.shift.add(self.conv_last(self.upsample(res)))


@register_model
def rcan(**kw):
    """BasicSR RCAN; keyword arguments as :class:`RCAN`."""
    return RCAN(**kw)
