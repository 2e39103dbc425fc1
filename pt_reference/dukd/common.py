"""Pieces shared by the BasicSR super-resolution archs (PyTorch reference): the pixel-shuffle
upsampler and the RGB mean shift. Parameter names follow ``basicsr/archs/arch_util.py``."""
import math

import torch
from torch import nn

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def check_scale(scale):
    """Scales the pixel-shuffle upsampler supports: powers of two and 3."""
    if scale < 1 or not ((scale & (scale - 1)) == 0 or scale == 3):
        raise ValueError(f"upscale {scale} is not supported; supported: 2^n and 3")
    return int(scale)


class Upsample(nn.Sequential):
    """log2(scale) x (conv3x3 num_feat -> 4 num_feat, PixelShuffle(2)), or one conv to 9 num_feat
    and PixelShuffle(3) for scale 3. Children are numbered 0, 1, 2, ... as in BasicSR."""

    def __init__(self, scale, num_feat):
        scale = check_scale(scale)
        layers = []
        if scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class MeanShift(nn.Module):
    """``(x - mean) * img_range`` on the way in, ``x / img_range + mean`` on the way out; the mean
    is a constant, not part of the state dict (as in BasicSR)."""

    def __init__(self, img_range, rgb_mean=DIV2K_RGB_MEAN, channels=3):
        super().__init__()
        self.img_range = float(img_range)
        mean = rgb_mean if channels == 3 else (0.0,) * channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1),
                             persistent=False)

    def sub(self, x):
        return (x - self.mean) * self.img_range

    def add(self, x):
        return x / self.img_range + self.mean
