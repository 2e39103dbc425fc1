"""Detection transforms following the official YOLOv6 / Gold-YOLO data pipeline (numpy + OpenCV).

Images are BGR uint8 (h, w, 3) until ``to_network_input``; labels are float arrays of rows
``[class, x1, y1, x2, y2]`` in pixels of the image they accompany. Every random choice comes from
the ``np.random.Generator`` passed in, so two runs given equal generators produce equal outputs.
"""
import math

import cv2
import numpy as np

PAD_VALUE = 114

# Official hyper-parameter names (yolov6 `hyp`); values of the Gold-YOLO N/S recipe.
DEFAULT_AUG = {
    "mosaic": 1.0, "mixup": 0.0,
    "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0,
    "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4,
    "flipud": 0.0, "fliplr": 0.5,
}


def merge_aug_cfg(aug_cfg=None):
    """``DEFAULT_AUG`` updated with ``aug_cfg``; an unknown key is an error naming the valid keys."""
    cfg = dict(DEFAULT_AUG)
    for key, value in dict(aug_cfg or {}).items():
        if key not in DEFAULT_AUG:
            raise KeyError(f"unknown augmentation key '{key}'; valid keys: {', '.join(DEFAULT_AUG)}")
        cfg[key] = float(value)
    return cfg


def resize_long_side(img, size, augment):
    """Resize so that the long side equals ``size`` (official ``load_image``).

    New size is ``(int(w0 * r), int(h0 * r))`` with ``r = size / max(h0, w0)``; INTER_AREA when
    shrinking for evaluation, INTER_LINEAR otherwise. Returns (image, (h0, w0), (h, w)).
    """
    h0, w0 = img.shape[:2]
    r = size / max(h0, w0)
    if r != 1:
        interp = cv2.INTER_AREA if r < 1 and not augment else cv2.INTER_LINEAR
        img = cv2.resize(img, (int(w0 * r), int(h0 * r)), interpolation=interp)
    return img, (h0, w0), img.shape[:2]


def letterbox(img, new_shape, scaleup=True, return_int=False, color=PAD_VALUE):
    """Resize keeping the aspect ratio and pad to ``new_shape`` (h, w) (official ``auto=False``).

    Returns (image, ratio, pad). ``pad`` is (dw/2, dh/2) as floats (official default; the pixels
    actually placed left/top are ``round(d/2 - 0.1)``) or, with ``return_int``, the integer
    (left, top) offsets actually used.
    """
    shape = img.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = (int(round(shape[1] * r)), int(round(shape[0] * r)))
    dw, dh = (new_shape[1] - new_unpad[0]) / 2, (new_shape[0] - new_unpad[1]) / 2
    if (shape[1], shape[0]) != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color,) * 3)
    return img, r, ((left, top) if return_int else (dw, dh))


def augment_hsv(img, rng, hgain=0.5, sgain=0.5, vgain=0.5):
    """Random gains on hue/saturation/value through lookup tables; returns a new BGR uint8 image."""
    if not (hgain or sgain or vgain):
        return img
    r = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(0, 256, dtype=r.dtype)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def affine_matrix(rng, img_shape, new_shape, degrees, scale, shear, translate):
    """3x3 matrix T @ S @ R @ C of the official ``get_transform_matrix`` and the scale ``s``.

    Draw order: angle, scale, shear x, shear y, translate x, translate y.
    """
    new_h, new_w = new_shape
    c = np.eye(3)
    c[0, 2] = -img_shape[1] / 2
    c[1, 2] = -img_shape[0] / 2
    rot = np.eye(3)
    a = rng.uniform(-degrees, degrees)
    s = rng.uniform(1 - scale, 1 + scale)
    rot[:2] = cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=s)
    sh = np.eye(3)
    sh[0, 1] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    sh[1, 0] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * new_w
    t[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * new_h
    return t @ sh @ rot @ c, s


def box_candidates(box1, box2, wh_thr=2, ar_thr=20, area_thr=0.1, eps=1e-16):
    """Keep mask for boxes (4, n) before (box1, scaled) and after (box2) augmentation."""
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def random_affine(img, labels, rng, degrees=0.0, translate=0.1, scale=0.5, shear=0.0, new_shape=(640, 640)):
    """Warp ``img`` to ``new_shape`` (h, w) with a random affine; transform, clip and filter labels.

    Boxes are the axis-aligned hull of their 4 transformed corners, clipped to the output, and
    dropped by ``box_candidates`` (<= 2 px, < 10 % of the scaled area, aspect >= 20).
    """
    height, width = new_shape
    m, s = affine_matrix(rng, img.shape[:2], (height, width), degrees, scale, shear, translate)
    if (m != np.eye(3)).any():
        img = cv2.warpAffine(img, m[:2], dsize=(width, height), borderValue=(PAD_VALUE,) * 3)
    n = len(labels)
    if n:
        xy = np.ones((n * 4, 3))
        xy[:, :2] = labels[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)
        xy = (xy @ m.T)[:, :2].reshape(n, 8)
        x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
        new = np.stack((x.min(1), y.min(1), x.max(1), y.max(1)), axis=1)
        new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
        new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
        keep = box_candidates(labels[:, 1:5].T * s, new.T, area_thr=0.1)
        labels = labels[keep].copy()
        labels[:, 1:5] = new[keep]
    return img, labels


def mosaic_canvas(imgs, labels, s, rng):
    """Place 4 images (already resized, long side ``s``) around a random centre of a 2s x 2s canvas
    filled with 114; labels are shifted and clipped to [0, 2s]. Returns (canvas, labels)."""
    if len(imgs) != 4:
        raise ValueError(f"mosaic needs 4 images, got {len(imgs)}")
    yc, xc = (int(rng.uniform(s // 2, 3 * s // 2)) for _ in range(2))
    canvas = np.full((s * 2, s * 2, imgs[0].shape[2]), PAD_VALUE, dtype=np.uint8)
    out = []
    for i, (img, lab) in enumerate(zip(imgs, labels)):
        h, w = img.shape[:2]
        if i == 0:    # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif i == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif i == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:         # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        canvas[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
        lab = np.array(lab, dtype=np.float64).reshape(-1, 5)
        lab[:, [1, 3]] += x1a - x1b
        lab[:, [2, 4]] += y1a - y1b
        out.append(lab)
    out = np.concatenate(out, 0)
    out[:, 1:] = out[:, 1:].clip(0, 2 * s)
    return canvas, out


def mixup(img, labels, img2, labels2, rng):
    """Blend two images with ratio ~ Beta(32, 32) and concatenate their labels."""
    r = rng.beta(32.0, 32.0)
    img = (img * r + img2 * (1 - r)).astype(np.uint8)
    return img, np.concatenate((labels, labels2), 0)


def flip_lr(img, labels):
    """Mirror horizontally; x1' = W - x2, x2' = W - x1."""
    w = img.shape[1]
    labels = labels.copy()
    labels[:, [1, 3]] = w - labels[:, [3, 1]]
    return np.ascontiguousarray(img[:, ::-1]), labels


def flip_ud(img, labels):
    """Mirror vertically; y1' = H - y2, y2' = H - y1."""
    h = img.shape[0]
    labels = labels.copy()
    labels[:, [2, 4]] = h - labels[:, [4, 2]]
    return np.ascontiguousarray(img[::-1]), labels


def to_network_input(img):
    """BGR uint8 (h, w, 3) -> RGB float32 (3, h, w) in [0, 1]."""
    out = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1).astype(np.float32)
    out /= np.float32(255)
    return out


def rect_batch_shapes(shapes, batch_size, img_size, stride=32, pad=0.5):
    """Official rectangular-inference batching.

    Args:
        shapes: (n, 2) image (h, w).
    Returns:
        order: image indices sorted by aspect ratio h/w (stable);
        batch_shapes: (num_batches, 2) letterbox target (h, w) per batch, multiples of ``stride``.
    """
    shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    ar = shapes[:, 0] / shapes[:, 1]
    order = np.argsort(ar, kind="stable")
    ar = ar[order]
    nb = int(math.ceil(len(order) / batch_size))
    rel = np.ones((nb, 2))
    for b in range(nb):
        ari = ar[b * batch_size:(b + 1) * batch_size]
        lo, hi = ari.min(), ari.max()
        if hi < 1:
            rel[b] = (hi, 1)
        elif lo > 1:
            rel[b] = (1, 1 / lo)
    batch_shapes = np.ceil(rel * img_size / stride + pad).astype(np.int64) * stride
    return order, batch_shapes


def boxes_to_letterbox(boxes, gain, pad):
    """Map (n, 4) xyxy boxes into letterboxed pixels: ``x * gain_x + pad_x``, ``y * gain_y + pad_y``
    with ``gain`` = (gain_y, gain_x) and ``pad`` = (pad_x, pad_y), as the official loader."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, [0, 2]] = out[:, [0, 2]] * gain[1] + pad[0]
    out[:, [1, 3]] = out[:, [1, 3]] * gain[0] + pad[1]
    return out


def boxes_to_original(boxes, orig_shape, gain, pad, exact=False):
    """Inverse mapping (official ``scale_coords``): subtract ``pad``, divide by ``gain`` and clip.

    Args:
        boxes: (n, 4) xyxy in network-input pixels.
        orig_shape: (h0, w0).
        gain: (gain_y, gain_x) = (h * ratio / h0, w * ratio / w0).
        pad: (pad_x, pad_y).
        exact: per-axis gains (``scale_exact``); otherwise both axes use gain_y as the official code.
    """
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, [0, 2]] = (out[:, [0, 2]] - pad[0]) / (gain[1] if exact else gain[0])
    out[:, [1, 3]] = (out[:, [1, 3]] - pad[1]) / gain[0]
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, orig_shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, orig_shape[0])
    return out
