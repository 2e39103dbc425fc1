"""Classification image transforms (PIL + numpy), driven by pre-drawn uniforms.

Every random choice of a training sample comes from a row of ``TRAIN_DRAWS`` uniforms in [0, 1)
drawn by the batch iterator from one seeded ``np.random.Generator``. The transform itself is a
pure function of (image, uniforms), so the batches do not depend on the number of worker threads
and both frameworks see identical inputs.

Semantics follow torchvision/timm:
- ``random_resized_crop_box``: torchvision ``RandomResizedCrop.get_params`` (10 attempts of
  area scale x log-uniform aspect ratio, then the central-crop fallback).
- ``eval_transform``: timm/DeiT eval: resize the shorter side to ``floor(size / crop_pct)``
  (bicubic by default), then a centre crop of ``size`` x ``size`` (torchvision rounding).
- ``to_chw_normalized``: ``(x / 255 - mean) / std`` with the ImageNet mean/std, HWC -> CHW.
"""
import math

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RRC_ATTEMPTS = 10
# Per sample: 4 uniforms per crop attempt (area, log-ratio, top, left) + 1 for the flip.
TRAIN_DRAWS = 4 * RRC_ATTEMPTS + 1

INTERPOLATIONS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def _interp(name):
    try:
        return INTERPOLATIONS[name]
    except KeyError:
        raise ValueError(f"unknown interpolation '{name}' (choices: {sorted(INTERPOLATIONS)})") from None


def random_resized_crop_box(width, height, u, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """Crop box ``(top, left, h, w)`` in pixels for an image of ``width`` x ``height``.

    ``u``: array of at least ``4 * RRC_ATTEMPTS`` uniforms in [0, 1), consumed four per attempt
    (area fraction, log aspect ratio, top offset, left offset). An attempt is accepted when the
    rounded crop fits; after ``RRC_ATTEMPTS`` failures the central crop with the aspect ratio
    clamped to ``ratio`` is returned (torchvision's fallback).
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1)[: 4 * RRC_ATTEMPTS].reshape(RRC_ATTEMPTS, 4)
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for ua, ur, ui, uj in u:
        target_area = area * (scale[0] + ua * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + ur * (log_hi - log_lo))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            # floor(u * n) is uniform on {0..n-1}; min() guards u*n rounding up to n.
            top = min(int(ui * (height - h + 1)), height - h)
            left = min(int(uj * (width - w + 1)), width - w)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(img, u, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                    interpolation="bilinear"):
    """RandomResizedCrop to ``size`` x ``size`` + horizontal flip with probability ``hflip``.

    ``img``: PIL RGB image; ``u``: ``TRAIN_DRAWS`` uniforms. Returns uint8 (size, size, 3).
    """
    top, left, h, w = random_resized_crop_box(img.width, img.height, u, scale, ratio)
    # Crop first: resizing with box= would let the filter read pixels outside the crop.
    out = img.crop((left, top, left + w, top + h)).resize((size, size), _interp(interpolation))
    arr = np.asarray(out, dtype=np.uint8)
    if u[4 * RRC_ATTEMPTS] < hflip:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


def resize_shorter(img, short, interpolation="bicubic"):
    """Resize so that the shorter side is ``short`` (torchvision ``Resize(int)`` sizes)."""
    w, h = img.size
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), _interp(interpolation))


def center_crop(arr, size):
    """Centre ``size`` x ``size`` crop of an (H, W, C) array (torchvision ``CenterCrop`` offsets)."""
    h, w = arr.shape[:2]
    if h < size or w < size:
        raise ValueError(f"center_crop: image {h}x{w} is smaller than the crop {size}")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return arr[top:top + size, left:left + size]


def eval_transform(img, size, crop_pct=0.875, interpolation="bicubic"):
    """DeiT/timm eval transform: shorter side to ``floor(size / crop_pct)``, centre crop ``size``.

    Returns uint8 (size, size, 3).
    """
    scaled = resize_shorter(img, int(math.floor(size / crop_pct)), interpolation)
    return np.ascontiguousarray(center_crop(np.asarray(scaled, dtype=np.uint8), size))


def to_chw_normalized(batch_hwc, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) with ``(x / 255 - mean) / std``."""
    x = batch_hwc.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
