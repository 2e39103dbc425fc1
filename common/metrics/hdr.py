"""HDR metrics in float64 (numpy): mu-law tonemap, PSNR-l / PSNR-mu, SSIM-l / SSIM-mu.

Conventions of the public HDR baselines (HDR-Transformer, AHDRNet, SCTNet test scripts):
- mu-law: T(H) = log(1 + mu H) / log(1 + mu), mu = 5000.
- PSNR on images in [0, 1] with data range 1 (skimage ``peak_signal_noise_ratio(ref, x, data_range=1)``);
  -l on the linear output, -mu after T.
- SSIM: MATLAB ``ssim_index`` style: images scaled by 255 and clipped to [0, 255], Gaussian window
  11 x 11 with sigma 1.5 (normalised), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, statistics over the
  'valid' region only (a 5-pixel border is dropped), population (not sample) variances, mean over
  the map, averaged over the colour channels.
Images are (H, W, C) or (C, H, W) with ``channel_axis`` naming the channel axis.
"""
import numpy as np

MU = 5000.0


def mu_tonemap(h, mu=MU):
    """T(H) = log(1 + mu H) / log(1 + mu) in float64."""
    return np.log1p(mu * np.asarray(h, dtype=np.float64)) / np.log1p(mu)


def psnr(ref, x, data_range=1.0):
    """10 log10(range^2 / MSE) in float64; inf for identical images."""
    ref = np.asarray(ref, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if ref.shape != x.shape:
        raise ValueError(f"psnr: shapes differ, {ref.shape} vs {x.shape}")
    mse = np.mean((ref - x) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def gaussian_window(size=11, sigma=1.5):
    """Normalised 2-D Gaussian (MATLAB ``fspecial('gaussian', size, sigma)``), float64."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r ** 2) / (2.0 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def _filter_valid(img, win):
    """'valid' 2-D correlation of (H, W) with a separable symmetric window (H-10, W-10 for 11 x 11)."""
    g = win.sum(axis=1)  # the 1-D factor (window is an outer product of normalised g)
    g = g / g.sum()
    k = len(g)
    h, w = img.shape
    rows = sum(g[i] * img[i:h - k + 1 + i, :] for i in range(k))
    return sum(g[j] * rows[:, j:w - k + 1 + j] for j in range(k))


def ssim_gray(a, b, win=None, data_range=255.0):
    """MATLAB-style SSIM of two (H, W) float64 images (already in [0, data_range])."""
    win = gaussian_window() if win is None else win
    k = win.shape[0]
    if a.shape != b.shape or min(a.shape) < k:
        raise ValueError(f"ssim: need equal shapes of at least {k}x{k}, got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, win), _filter_valid(b, win)
    saa = _filter_valid(a * a, win) - mu_a ** 2
    sbb = _filter_valid(b * b, win) - mu_b ** 2
    sab = _filter_valid(a * b, win) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def ssim(ref, x, channel_axis=-1):
    """Mean over channels of MATLAB-style SSIM on images in [0, 1] (scaled by 255, clipped)."""
    ref = np.clip(np.asarray(ref, dtype=np.float64) * 255.0, 0.0, 255.0)
    x = np.clip(np.asarray(x, dtype=np.float64) * 255.0, 0.0, 255.0)
    if ref.shape != x.shape:
        raise ValueError(f"ssim: shapes differ, {ref.shape} vs {x.shape}")
    if ref.ndim == 2:
        return ssim_gray(ref, x)
    ref, x = np.moveaxis(ref, channel_axis, 0), np.moveaxis(x, channel_axis, 0)
    win = gaussian_window()
    return float(np.mean([ssim_gray(r, y, win) for r, y in zip(ref, x)]))


def hdr_metrics(pred, label, channel_axis=-1, mu=MU):
    """``{'psnr_l', 'psnr_mu', 'ssim_l', 'ssim_mu'}`` of one linear HDR prediction against its label."""
    pred = np.asarray(pred, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    tp, tl = mu_tonemap(pred, mu), mu_tonemap(label, mu)
    return {"psnr_l": psnr(label, pred), "psnr_mu": psnr(tl, tp),
            "ssim_l": ssim(label, pred, channel_axis), "ssim_mu": ssim(tl, tp, channel_axis)}


class HDRMetrics:
    """Per-image metrics averaged over images (the per-scene average of the Kalantari test)."""

    KEYS = ("psnr_l", "psnr_mu", "ssim_l", "ssim_mu")

    def __init__(self):
        self.rows = []

    def update(self, pred, label, channel_axis=-1):
        row = hdr_metrics(pred, label, channel_axis)
        self.rows.append(row)
        return row

    def compute(self):
        if not self.rows:
            raise ValueError("HDRMetrics.compute: no images were scored")
        return {k: float(np.mean([r[k] for r in self.rows])) for k in self.KEYS}
