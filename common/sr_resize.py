"""MATLAB ``imresize`` (bicubic, a = -0.5, antialiased when downscaling) in numpy, as BasicSR's
``basicsr/utils/matlab_functions.imresize`` computes it (the DIV2K LR images and DUKD's zoom-out
inputs are made this way).

Each axis is a linear map, so the resize is ``out = M_h @ img @ M_w.T`` with two dense matrices:
row i of ``M`` holds the normalised cubic weights of output pixel i, and taps that fall outside the
image are folded back by symmetric reflection (``x[-1] = x[0]``, ``x[n] = x[n-1]``), which is the
symmetric padding of MATLAB and BasicSR. The matrices are built in float64; the MindSpore and
PyTorch twins (``ms_models/dukd/resize.py``, ``pt_reference/dukd/resize.py``) apply the same
matrices with a framework matmul.
"""
import math

import numpy as np

KERNEL_WIDTH = 4.0


def cubic(x):
    """Keys cubic kernel with a = -0.5 (MATLAB's ``cubic``), float64."""
    ax = np.abs(np.asarray(x, np.float64))
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def output_length(in_length, scale):
    """``ceil(in_length * scale)`` (MATLAB/BasicSR)."""
    return int(math.ceil(in_length * scale))


def resize_matrix(in_length, scale, antialiasing=True):
    """(out_length, in_length) float64 matrix of the 1-D MATLAB bicubic resize by ``scale``."""
    if in_length < 1 or scale <= 0:
        raise ValueError(f"resize_matrix: need in_length >= 1 and scale > 0, got {in_length}, {scale}")
    out_length = output_length(in_length, scale)
    width = KERNEL_WIDTH / scale if (scale < 1 and antialiasing) else KERNEL_WIDTH
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)          # 1-based input coordinate of output pixel x
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]        # 1-based input indices
    dist = u[:, None] - idx
    w = scale * cubic(dist * scale) if (scale < 1 and antialiasing) else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    m = idx.astype(np.int64) - 1                           # 0-based, may fall outside [0, n)
    m = np.where(m < 0, -m - 1, m)
    m = np.where(m >= in_length, 2 * in_length - 1 - m, m)
    if m.min() < 0 or m.max() >= in_length:
        raise ValueError(f"resize_matrix: input length {in_length} is too short for scale {scale}")
    mat = np.zeros((out_length, in_length), np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_length), taps), m.ravel()), w.ravel())
    return mat


def imresize(img, scale, antialiasing=True, layout="hwc"):
    """Resize ``img`` by ``scale`` (same on both axes); float64 result, no rounding or clamping.

    Args:
        img: float array in [0, 1] (any float range works; the map is linear), ``(H, W)``,
            ``(H, W, C)`` for ``layout='hwc'`` or ``(..., C, H, W)`` for ``layout='chw'``.
        scale: e.g. 1/4 to make a x4 LR image; output sizes are ``ceil(H * scale)``.
    """
    a = np.asarray(img, np.float64)
    if layout == "hwc":
        if a.ndim not in (2, 3):
            raise ValueError(f"imresize(layout='hwc') expects (H, W) or (H, W, C), got shape {a.shape}")
        h, w = a.shape[:2]
        mh, mw = resize_matrix(h, scale, antialiasing), resize_matrix(w, scale, antialiasing)
        y = np.tensordot(mh, a, axes=(1, 0))                           # (oh, W, ...)
        return np.moveaxis(np.tensordot(mw, y, axes=(1, 1)), 0, 1)     # (oh, ow, ...)
    if layout == "chw":
        if a.ndim < 2:
            raise ValueError(f"imresize(layout='chw') expects (..., H, W), got shape {a.shape}")
        h, w = a.shape[-2:]
        mh, mw = resize_matrix(h, scale, antialiasing), resize_matrix(w, scale, antialiasing)
        return mh @ a @ mw.T
    raise ValueError(f"imresize: layout must be 'hwc' or 'chw', got {layout!r}")
