"""HDR metrics against independent implementations: skimage PSNR and Gaussian SSIM (which, with
sigma 1.5, population covariance and data range 255, is Wang et al.'s MATLAB ssim_index), and the
mu-law formula written out."""
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.metrics.hdr import HDRMetrics, gaussian_window, hdr_metrics, mu_tonemap, psnr, ssim


def _skimage_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255.0)


def test_mu_tonemap_formula_and_range():
    h = np.array([0.0, 1e-4, 0.01, 0.5, 1.0])
    np.testing.assert_allclose(mu_tonemap(h), np.log(1 + 5000 * h) / np.log(5001), rtol=0, atol=1e-15)
    assert mu_tonemap(1.0) == 1.0 and mu_tonemap(np.float32(0.5)).dtype == np.float64


def test_psnr_matches_skimage():
    rng = np.random.default_rng(0)
    ref = rng.random((3, 40, 50))
    x = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)
    assert abs(psnr(ref, x) - peak_signal_noise_ratio(ref, x, data_range=1.0)) < 1e-10
    assert psnr(ref, ref) == float("inf")


def test_gaussian_window_is_matlab_fspecial():
    w = gaussian_window()
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(w, g / g.sum(), atol=1e-16)


def test_ssim_matches_skimage_gray_and_colour():
    rng = np.random.default_rng(1)
    a = rng.random((37, 45, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ref = np.mean([_skimage_ssim(a[..., c] * 255, b[..., c] * 255) for c in range(3)])
    assert abs(ssim(a, b) - ref) < 1e-10
    assert abs(ssim(a.transpose(2, 0, 1), b.transpose(2, 0, 1), channel_axis=0) - ref) < 1e-10
    assert abs(ssim(a[..., 0], b[..., 0]) - _skimage_ssim(a[..., 0] * 255, b[..., 0] * 255)) < 1e-10
    assert abs(ssim(a, a) - 1.0) < 1e-12


def test_ssim_clips_to_display_range():
    rng = np.random.default_rng(2)
    a = rng.random((20, 20)) * 2.0            # values above 1 are clipped to 255 after scaling
    b = rng.random((20, 20))
    ref = _skimage_ssim(np.clip(a * 255, 0, 255), np.clip(b * 255, 0, 255))
    assert abs(ssim(a, b) - ref) < 1e-10


def test_hdr_metrics_and_average():
    rng = np.random.default_rng(3)
    label = rng.random((3, 24, 24)) ** 2.2
    pred = np.clip(label * 1.1, 0, 1).astype(np.float32)
    row = hdr_metrics(pred, label, channel_axis=0)
    assert abs(row["psnr_mu"] - peak_signal_noise_ratio(mu_tonemap(label), mu_tonemap(pred), data_range=1)) < 1e-10
    assert abs(row["psnr_l"] - peak_signal_noise_ratio(label, pred.astype(np.float64), data_range=1)) < 1e-10
    m = HDRMetrics()
    m.update(pred, label, channel_axis=0)
    m.update(label, label, channel_axis=0)
    assert m.compute()["psnr_mu"] == float("inf")
    assert abs(m.compute()["ssim_l"] - (row["ssim_l"] + 1.0) / 2) < 1e-12
