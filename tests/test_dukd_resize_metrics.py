"""MATLAB bicubic resize and the BasicSR SR metrics against independent computations (PIL's
antialiased bicubic in the interior, the linear-ramp identity, scikit-image SSIM, the PSNR formula)."""
import math

import numpy as np
import pytest
from PIL import Image

from common.metrics.sr import SRMetrics, psnr, rgb_to_y, ssim, to_uint8
from common.sr_resize import imresize, resize_matrix


@pytest.mark.parametrize("s", [2, 3, 4])
def test_downscale_matches_pil_bicubic_in_the_interior(s):
    """PIL's BICUBIC (a = -0.5, support scaled by the factor) is MATLAB's antialiased cubic away from
    the borders, where only the boundary handling differs (PIL renormalises, MATLAB reflects)."""
    a = np.random.default_rng(s).random((12 * s, 10 * s)).astype(np.float32)
    ours = imresize(a, 1.0 / s)
    pil = np.asarray(Image.fromarray(a, mode="F").resize((10, 12), Image.BICUBIC), np.float64)
    c = 2
    assert ours.shape == (12, 10)
    assert np.abs(ours - pil)[c:-c, c:-c].max() < 1e-6
    assert np.abs(ours - pil).max() > 1e-3          # the borders differ: the reflection is there


def test_linear_ramp_and_constants_are_reproduced():
    """The cubic kernel reproduces linear functions: output pixel i (1-based) of a ramp f(m) = m
    is u = i / scale + 0.5 (1 - 1 / scale) away from the borders; rows sum to 1."""
    ramp = np.tile(np.arange(1, 49, dtype=np.float64)[:, None], (1, 8))
    for s in (2, 3, 4):
        out = imresize(ramp, 1.0 / s)[:, 0]
        i = np.arange(1, 48 // s + 1)
        expected = i * s + 0.5 * (1 - s)
        assert np.abs(out - expected)[2:-2].max() < 1e-9
        np.testing.assert_allclose(resize_matrix(48, 1.0 / s).sum(1), 1.0, atol=1e-12)
    const = np.full((13, 17, 3), 0.3)
    np.testing.assert_allclose(imresize(const, 0.5), 0.3, atol=1e-12)
    assert imresize(const, 0.5).shape == (7, 9, 3)             # ceil(13 / 2), ceil(17 / 2)
    assert imresize(const, 2.0).shape == (26, 34, 3)


def test_hwc_and_chw_layouts_agree():
    a = np.random.default_rng(0).random((20, 18, 3))
    np.testing.assert_allclose(imresize(a, 1 / 3).transpose(2, 0, 1), imresize(a.transpose(2, 0, 1), 1 / 3,
                                                                                 layout="chw"), atol=1e-12)
    with pytest.raises(ValueError, match="layout"):
        imresize(a, 0.5, layout="nhwc")


def test_y_channel_and_psnr_match_the_formulas():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    y = rgb_to_y(a)
    y_ref = 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
    assert y.dtype == np.float32 and np.abs(y - y_ref).max() < 1e-4
    yb = 16.0 + (65.481 * b[..., 0] + 128.553 * b[..., 1] + 24.966 * b[..., 2]) / 255.0
    mse = np.mean((y_ref[2:-2, 2:-2] - yb[2:-2, 2:-2]) ** 2)
    assert abs(psnr(a, b, crop_border=2) - 10 * math.log10(255 ** 2 / mse)) < 1e-4
    mse_rgb = np.mean((a.astype(float) - b.astype(float)) ** 2)
    assert abs(psnr(a, b, test_y=False) - 10 * math.log10(255 ** 2 / mse_rgb)) < 1e-9
    assert psnr(a, a) == math.inf


def test_ssim_matches_scikit_image_gaussian_ssim():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (40, 36, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    ya, yb = rgb_to_y(a[3:-3, 3:-3]).astype(np.float64), rgb_to_y(b[3:-3, 3:-3]).astype(np.float64)
    ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    got = ssim(a, b, crop_border=3)
    assert 0.2 < got < 0.99 and abs(got - ref) < 1e-9
    assert abs(ssim(a, a) - 1.0) < 1e-12
    with pytest.raises(ValueError, match="11x11"):
        ssim(a[:12, :12], b[:12, :12], crop_border=2)


def test_to_uint8_clamps_and_rounds_and_metrics_average():
    x = np.array([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.3], np.float32)
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 0, 2, 128, 255, 255])
    m = SRMetrics(crop_border=0)
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (16, 16, 3)).astype(np.uint8) for _ in range(4)]
    m.update(imgs[0], imgs[1])
    m.update(imgs[2], imgs[3])
    res = m.compute()
    assert abs(res["psnr"] - (psnr(imgs[0], imgs[1]) + psnr(imgs[2], imgs[3])) / 2) < 1e-12
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(imgs[0], imgs[1][:8])
