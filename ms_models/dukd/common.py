"""Pieces shared by the BasicSR super-resolution archs (MindSpore): conv3x3 with explicit padding,
pixel shuffle, the pixel-shuffle upsampler and the RGB mean shift. Parameter names follow
``basicsr/archs/arch_util.py`` and match ``pt_reference/dukd/common.py``."""
import math

import numpy as np
from mindspore import Tensor, nn, ops

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def check_scale(scale):
    """Scales the pixel-shuffle upsampler supports: powers of two and 3."""
    if scale < 1 or not ((scale & (scale - 1)) == 0 or scale == 3):
        raise ValueError(f"upscale {scale} is not supported; supported: 2^n and 3")
    return int(scale)


def conv(in_ch, out_ch, k=3):
    """torch ``nn.Conv2d(in_ch, out_ch, k, 1, k // 2)`` (bias on, explicit zero padding)."""
    if k == 1:
        return nn.Conv2d(in_ch, out_ch, 1, pad_mode="valid", has_bias=True)
    return nn.Conv2d(in_ch, out_ch, k, stride=1, pad_mode="pad", padding=k // 2, has_bias=True)


class PixelShuffle(nn.Cell):
    """torch ``nn.PixelShuffle(r)``: (B, C*r*r, H, W) -> (B, C, H*r, W*r)."""

    def __init__(self, r):
        super().__init__()
        self.r = int(r)

    def construct(self, x):
        b, c, h, w = x.shape
        r = self.r
        x = ops.reshape(x, (b, c // (r * r), r, r, h, w))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        return ops.reshape(x, (b, c // (r * r), h * r, w * r))


class Upsample(nn.SequentialCell):
    """log2(scale) x (conv3x3 to 4 num_feat, PixelShuffle(2)), or conv to 9 num_feat and
    PixelShuffle(3); children numbered 0, 1, 2, ... as in BasicSR."""

    def __init__(self, scale, num_feat):
        scale = check_scale(scale)
        layers = []
        if scale == 3:
            layers += [conv(num_feat, 9 * num_feat), PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [conv(num_feat, 4 * num_feat), PixelShuffle(2)]
        super().__init__(layers)


class MeanShift(nn.Cell):
    """``(x - mean) * img_range`` in, ``x / img_range + mean`` out; the mean is a constant (no Parameter)."""

    def __init__(self, img_range, rgb_mean=DIV2K_RGB_MEAN, channels=3):
        super().__init__()
        self.img_range = float(img_range)
        mean = rgb_mean if channels == 3 else (0.0,) * channels
        self.mean = Tensor(np.asarray(mean, np.float32).reshape(1, channels, 1, 1))

    def sub(self, x):
        return (x - self.mean.astype(x.dtype)) * self.img_range

    def add(self, x):
        return x / self.img_range + self.mean.astype(x.dtype)

    def construct(self, x):
        return self.sub(x)


__all__ = ["DIV2K_RGB_MEAN", "MeanShift", "PixelShuffle", "Upsample", "check_scale", "conv"]
