"""Super-resolution metrics as BasicSR computes them (``basicsr/metrics/psnr_ssim.py``,
``basicsr/utils/color_util.py``, ``tensor2img``):

- a network output (float, RGB, [0, 1]) becomes uint8 by clamp, x255, round (:func:`to_uint8`);
- the Y channel is ``16 + 65.481 R + 128.553 G + 24.966 B`` with RGB in [0, 1], in float32 and
  not rounded (:func:`rgb_to_y`, BasicSR's ``to_y_channel``);
- ``crop_border`` pixels are removed on every side (the scale, by convention);
- PSNR in float64 with peak 255; SSIM as MATLAB's ``ssim`` of Wang et al.: an 11x11 Gaussian
  window with sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, the mean over the 'valid' region.
"""
import math

import numpy as np

_Y_COEF = np.array([65.481, 128.553, 24.966], np.float32)


def to_uint8(img):
    """float image in [0, 1] (any layout) -> uint8: clamp, x255, round half to even (numpy/torch)."""
    return np.round(np.clip(np.asarray(img, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def rgb_to_y(img_hwc):
    """Y of BT.601 in [16, 235] from an (H, W, 3) RGB image (uint8, or float32 in [0, 255]); float32."""
    a = np.asarray(img_hwc)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an (H, W, 3) RGB image, got shape {a.shape}")
    x = a.astype(np.float32) / np.float32(255.0)
    y = np.dot(x, _Y_COEF) + np.float32(16.0)
    return (y / np.float32(255.0)).astype(np.float32) * np.float32(255.0)


def _prepare(img, ref, crop_border, test_y):
    a, b = np.asarray(img), np.asarray(ref)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs reference {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if crop_border:
        c = int(crop_border)
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {np.asarray(img).shape} image")
    if test_y:
        if a.shape[2] != 3:
            raise ValueError(f"test_y needs 3-channel RGB images, got {a.shape[2]} channels")
        a, b = rgb_to_y(a)[:, :, None], rgb_to_y(b)[:, :, None]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(img, ref, crop_border=0, test_y=True):
    """PSNR (dB, float64, peak 255) of two (H, W, 3) RGB images with values in [0, 255] (uint8)."""
    a, b = _prepare(img, ref, crop_border, test_y)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def gaussian_window(size=11, sigma=1.5):
    """(size, size) float64 Gaussian window summing to 1 (OpenCV ``getGaussianKernel`` outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def _filter_valid(img, window):
    """Correlation of a 2-D image with ``window`` over the 'valid' region (float64)."""
    k = window.shape[0]
    view = np.lib.stride_tricks.sliding_window_view(img, (k, k))
    return np.einsum("ijkl,kl->ij", view, window)


def _ssim_channel(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    win = gaussian_window()
    mu1, mu2 = _filter_valid(a, win), _filter_valid(b, win)
    s11 = _filter_valid(a * a, win) - mu1 ** 2
    s22 = _filter_valid(b * b, win) - mu2 ** 2
    s12 = _filter_valid(a * b, win) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean())


def ssim(img, ref, crop_border=0, test_y=True):
    """MATLAB-style SSIM (float64) of two (H, W, 3) RGB images in [0, 255]; mean over channels
    when ``test_y`` is False. Needs at least 11x11 pixels after the crop."""
    a, b = _prepare(img, ref, crop_border, test_y)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"ssim needs at least 11x11 pixels after cropping, got {a.shape[:2]}")
    return float(np.mean([_ssim_channel(a[:, :, i], b[:, :, i]) for i in range(a.shape[2])]))


class SRMetrics:
    """Accumulates per-image PSNR/SSIM (Y channel by default) and their means."""

    def __init__(self, crop_border, test_y=True):
        self.crop_border, self.test_y = int(crop_border), bool(test_y)
        self.psnr, self.ssim = [], []

    def update(self, sr_uint8, hr_uint8):
        self.psnr.append(psnr(sr_uint8, hr_uint8, self.crop_border, self.test_y))
        self.ssim.append(ssim(sr_uint8, hr_uint8, self.crop_border, self.test_y))

    def compute(self):
        if not self.psnr:
            raise ValueError("SRMetrics.compute: no images were evaluated")
        return {"psnr": float(np.mean(self.psnr)), "ssim": float(np.mean(self.ssim))}
