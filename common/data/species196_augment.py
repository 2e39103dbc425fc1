"""FixMatch weak and strong augmentations (PIL + numpy), driven by pre-drawn uniforms.

As in ``cls_transforms``, a transform is a pure function of (image, uniforms): the batch iterator
draws every random choice from one seeded numpy generator, so both frameworks (and any number of
decoding threads) see identical batches.

- ``weak``: resize the shorter side to ``size`` and centre-crop, horizontal flip (p = 0.5), then a
  random translation of up to ``pad_frac * size`` pixels with reflect padding (FixMatch's
  ``RandomCrop(size, padding=int(size*0.125), padding_mode='reflect')``).
- ``strong``: ``weak``, then RandAugment-MC as in FixMatch: ``n`` ops drawn uniformly from
  ``FIXMATCH_OPS``, each applied with probability 0.5 at magnitude ``v / 10`` with ``v`` uniform in
  {1..m}, then Cutout: a grey (127) square of side ``cutout * size`` at a uniform centre.
"""
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .cls_transforms import center_crop, resize_shorter

FILL = (128, 128, 128)
FIXMATCH_OPS = ("AutoContrast", "Brightness", "Color", "Contrast", "Equalize", "Identity", "Posterize", "Rotate",
                "Sharpness", "ShearX", "ShearY", "Solarize", "TranslateX", "TranslateY")
WEAK_DRAWS = 3          # flip, dy, dx
OP_DRAWS = 4            # op index, magnitude, apply, sign


def strong_draws(n_ops):
    """Uniforms per sample of the strong transform: weak + 4 per op + 2 for the Cutout centre."""
    return WEAK_DRAWS + OP_DRAWS * n_ops + 2


def base_view(img, size):
    """Shorter side to ``size`` (bicubic), centre crop: uint8 (size, size, 3)."""
    return np.ascontiguousarray(center_crop(np.asarray(resize_shorter(img, size, "bicubic"), np.uint8), size))


def weak_array(arr, u, pad_frac=0.125):
    """Flip + reflect-padded translation of a uint8 (S, S, 3) array with uniforms ``u[:3]``."""
    size = arr.shape[0]
    if u[0] < 0.5:
        arr = arr[:, ::-1]
    pad = int(size * pad_frac)
    if pad > 0:
        padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        top = min(int(u[1] * (2 * pad + 1)), 2 * pad)
        left = min(int(u[2] * (2 * pad + 1)), 2 * pad)
        arr = padded[top:top + size, left:left + size]
    return np.ascontiguousarray(arr)


def apply_op(img, name, level, sign):
    """One RandAugment op on a PIL RGB image at ``level`` in (0, 1]; ``sign`` is +1 or -1."""
    w, h = img.size
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return getattr(ImageEnhance, name)(img).enhance(0.05 + 0.9 * level)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Identity":
        return img
    if name == "Posterize":
        return ImageOps.posterize(img, int(4 * level) + 4 if level < 1 else 8)
    if name == "Rotate":
        return img.rotate(30.0 * level * sign, resample=Image.BILINEAR, fillcolor=FILL)
    if name == "ShearX":
        return img.transform((w, h), Image.AFFINE, (1, 0.3 * level * sign, 0, 0, 1, 0), Image.BILINEAR, fillcolor=FILL)
    if name == "ShearY":
        return img.transform((w, h), Image.AFFINE, (1, 0, 0, 0.3 * level * sign, 1, 0), Image.BILINEAR, fillcolor=FILL)
    if name == "Solarize":
        return ImageOps.solarize(img, 256 - int(256 * level))
    if name == "TranslateX":
        return img.transform((w, h), Image.AFFINE, (1, 0, 0.3 * level * sign * w, 0, 1, 0), fillcolor=FILL)
    if name == "TranslateY":
        return img.transform((w, h), Image.AFFINE, (1, 0, 0, 0, 1, 0.3 * level * sign * h), fillcolor=FILL)
    raise ValueError(f"unknown RandAugment op {name!r} (choices: {FIXMATCH_OPS})")


def randaugment(arr, u, n_ops, magnitude):
    """RandAugment-MC on a uint8 array with uniforms ``u`` (``OP_DRAWS * n_ops`` of them)."""
    img = Image.fromarray(arr)
    for k in range(n_ops):
        uo, um, ua, us = u[OP_DRAWS * k:OP_DRAWS * (k + 1)]
        name = FIXMATCH_OPS[min(int(uo * len(FIXMATCH_OPS)), len(FIXMATCH_OPS) - 1)]
        v = 1 + min(int(um * magnitude), magnitude - 1)
        if ua < 0.5:
            img = apply_op(img, name, v / 10.0, 1.0 if us < 0.5 else -1.0)
    return np.asarray(img, np.uint8)


def cutout(arr, u, frac):
    """Grey square of side ``round(frac * size)`` centred at (u[0] * W, u[1] * H), clipped."""
    if frac <= 0:
        return arr
    h, w = arr.shape[:2]
    side = int(round(frac * min(h, w)))
    cx, cy = int(u[0] * w), int(u[1] * h)
    x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
    x1, y1 = min(w, x0 + side), min(h, y0 + side)
    out = arr.copy()
    out[y0:y1, x0:x1] = 127
    return out


def weak_transform(img, u, size, pad_frac=0.125):
    return weak_array(base_view(img, size), u, pad_frac)


def weak_strong_pair(img, u, size, n_ops=2, magnitude=10, cutout_frac=0.5, pad_frac=0.125):
    """``(weak, strong)`` uint8 views of one image; the strong one starts from the weak one."""
    weak = weak_transform(img, u[:WEAK_DRAWS], size, pad_frac)
    ops_u = u[WEAK_DRAWS:WEAK_DRAWS + OP_DRAWS * n_ops]
    strong = randaugment(weak, ops_u, n_ops, magnitude)
    strong = cutout(strong, u[WEAK_DRAWS + OP_DRAWS * n_ops:], cutout_frac)
    return weak, np.ascontiguousarray(strong)


def mae_masks(rng, batch, num_patches, mask_ratio):
    """MAE random masking drawn in numpy (``random_masking`` of the official code).

    Returns ``ids_keep`` int32 (B, keep), ``ids_restore`` int32 (B, L) and ``mask`` float32 (B, L)
    (1 = removed), with ``keep = int(L * (1 - mask_ratio))``; noise ties are broken by index.
    """
    noise = rng.random((batch, num_patches))
    ids_shuffle = np.argsort(noise, axis=1, kind="stable")
    ids_restore = np.argsort(ids_shuffle, axis=1, kind="stable")
    keep = int(num_patches * (1 - mask_ratio))
    mask = np.ones((batch, num_patches), np.float32)
    mask[:, :keep] = 0
    mask = np.take_along_axis(mask, ids_restore, axis=1)
    return ids_shuffle[:, :keep].astype(np.int32), ids_restore.astype(np.int32), mask


def keep_count(num_patches, mask_ratio):
    return int(num_patches * (1 - mask_ratio))


__all__ = ["FIXMATCH_OPS", "WEAK_DRAWS", "strong_draws", "weak_transform", "weak_strong_pair", "randaugment",
           "cutout", "mae_masks", "keep_count", "base_view"]
