"""Kalantari 2017 (SIG17) HDR data: scene reader, network inputs, training crops, tiled test protocol.

Scene folder: three 16-bit LDR ``*.tif`` (sorted by name; the middle one is the reference),
``exposure.txt`` (one value per frame, in stops: t_i = 2^v_i) and ``HDRImg.hdr`` (the label).
Everything is BGR, as in the public baselines: the TIFFs come from ``cv2.imread(path, -1)`` (BGR)
and the Radiance label from ``cv2.imread(path, IMREAD_ANYDEPTH | IMREAD_COLOR)``, also BGR (the
baselines read it RGB with imageio and reverse it; the result is the same array). LDR values are
divided by 2^16 (HDR-Transformer; ``ldr_scale=65535`` gives AHDRNet's ``im2single``).

Network input of frame i: the gamma-mapped HDR-domain image H_i = L_i^2.2 / (t_i + 1e-8) and L_i,
stacked to 6 channels in ``input_order`` ('hdr_first': H then L, HDR-Transformer; 'ldr_first':
AHDRNet), channels first.

Training crops (HDR-Transformer ``gen_crop_data.py``): 128 x 128 windows at stride 64 over every
training scene (14 x 22 = 308 per 1000 x 1500 scene), written as ``<crop>/0.tif 1.tif 2.tif
label.hdr exposure.txt``; optionally a second copy rotated 90 degrees clockwise and flipped
vertically. Test: each full scene padded with ones to a multiple of 256, non-overlapping 256 x 256
tiles run independently, cropped back, metrics averaged per scene.
"""
import math
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from common.atomic import atomic_path

GAMMA = 2.2
EPS_T = 1e-8
INPUT_ORDERS = ("hdr_first", "ldr_first")


class HDRDataError(ValueError):
    """A scene or crop folder that does not follow the Kalantari layout (the message names the file)."""


def read_exposures(path):
    """Exposure times t_i = 2^v_i from ``exposure.txt`` (one value in stops per line), float64."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8").split()
    except OSError as e:
        raise HDRDataError(f"{path}: cannot read exposure file ({e})") from None
    try:
        stops = np.array([float(v) for v in text], dtype=np.float64)
    except ValueError:
        raise HDRDataError(f"{path}: expected one number (stops) per line, got {text[:6]}") from None
    if stops.size == 0:
        raise HDRDataError(f"{path}: no exposure values")
    return np.power(2.0, stops)


def read_ldr(path, ldr_scale=65536.0):
    """16-bit TIFF -> float32 (H, W, 3) BGR in [0, 1)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise HDRDataError(f"{path}: cannot read image")
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] != 3:
        raise HDRDataError(f"{path}: expected a 3-channel 16-bit image, got dtype {img.dtype} shape {img.shape}")
    return img.astype(np.float32) / np.float32(ldr_scale)


def read_hdr(path):
    """Radiance ``.hdr`` -> float32 (H, W, 3) BGR."""
    img = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if img is None:
        raise HDRDataError(f"{path}: cannot read HDR image")
    if img.dtype != np.float32 or img.ndim != 3 or img.shape[2] != 3:
        raise HDRDataError(f"{path}: expected a 3-channel float HDR image, got dtype {img.dtype} shape {img.shape}")
    return img


def write_ldr(path, img01):
    """float (H, W, 3) BGR in [0, 1] -> 16-bit TIFF (value * 2^16, clipped to 65535), atomically."""
    q = np.clip(np.round(np.asarray(img01, dtype=np.float64) * 65536.0), 0, 65535).astype(np.uint16)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), q):
            raise OSError(f"{path}: cv2 could not write the TIFF")


def write_hdr(path, img):
    """float32 (H, W, 3) BGR -> Radiance ``.hdr``, atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.asarray(img, dtype=np.float32)):
            raise OSError(f"{path}: cv2 could not write the HDR image")


def write_exposures(path, stops):
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(f"{float(v):g}\n" for v in stops), encoding="utf-8")


def read_scene(folder, ldr_scale=65536.0):
    """``{'ldrs': float32 (3, H, W, 3) BGR, 'exposures': float64 (3,), 'label': float32 (H, W, 3) BGR}``."""
    folder = Path(folder)
    tifs = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if len(tifs) != 3:
        raise HDRDataError(f"{folder}: expected 3 LDR .tif files, found {len(tifs)}")
    exposures = read_exposures(folder / "exposure.txt")
    if exposures.size != 3:
        raise HDRDataError(f"{folder / 'exposure.txt'}: expected 3 values, got {exposures.size}")
    label_path = folder / "HDRImg.hdr" if (folder / "HDRImg.hdr").exists() else folder / "label.hdr"
    ldrs = np.stack([read_ldr(p, ldr_scale) for p in tifs])
    label = read_hdr(label_path)
    if ldrs.shape[1:] != label.shape:
        raise HDRDataError(f"{folder}: LDR size {ldrs.shape[1:3]} differs from label size {label.shape[:2]}")
    return {"ldrs": ldrs, "exposures": exposures, "label": label}


def ldr_to_hdr(ldr, t, gamma=GAMMA):
    """Gamma-mapped HDR-domain image L^gamma / (t + 1e-8) (same shape, float32)."""
    return (np.power(ldr, gamma) / (t + EPS_T)).astype(np.float32)


def scene_inputs(ldrs, exposures, input_order="hdr_first"):
    """Three (6, H, W) float32 network inputs from (3, H, W, 3) LDRs and (3,) exposure times."""
    if input_order not in INPUT_ORDERS:
        raise ValueError(f"input_order must be one of {INPUT_ORDERS}, got '{input_order}'")
    out = []
    for ldr, t in zip(ldrs, exposures):
        h = ldr_to_hdr(ldr, t)
        pair = (h, ldr) if input_order == "hdr_first" else (ldr, h)
        out.append(np.ascontiguousarray(np.concatenate(pair, axis=2).transpose(2, 0, 1), dtype=np.float32))
    return out


def list_scenes(root):
    """Scene folders (holding exposure.txt) under ``root``, up to two levels deep (Test/EXTRA/...)."""
    root = Path(root)
    if not root.is_dir():
        raise HDRDataError(f"{root}: not a folder (expected Kalantari scenes)")
    found = sorted({p.parent for pattern in ("*/exposure.txt", "*/*/exposure.txt") for p in root.glob(pattern)})
    if not found:
        raise HDRDataError(f"{root}: no scene folders with exposure.txt found")
    return found


def crop_grid(height, width, size=128, stride=64):
    """Top-left corners (y, x) of the training crops: every ``stride`` while the crop fits."""
    if height < size or width < size:
        return []
    return [(y, x) for y in range(0, height - size + 1, stride) for x in range(0, width - size + 1, stride)]


def rotate_flip(img):
    """The extra training sample of ``gen_crop_data.py``: 90 degrees clockwise, then a vertical flip."""
    return np.ascontiguousarray(np.flip(np.rot90(img, k=-1, axes=(0, 1)), axis=0))


def write_training_crops(scene_root, out_root, size=128, stride=64, rotate=False, ldr_scale=65536.0):
    """Cut every scene under ``scene_root`` into crop folders under ``out_root``; returns the count.

    Crops are named ``<scene>_<index>[_rot]``; LDRs are re-quantised to 16 bit exactly (x 2^16).
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    count = 0
    for folder in list_scenes(scene_root):
        scene = read_scene(folder, ldr_scale)
        stops = np.log2(scene["exposures"])
        h, w = scene["label"].shape[:2]
        for i, (y, x) in enumerate(crop_grid(h, w, size, stride)):
            views = [("", lambda a: a)] + ([("_rot", rotate_flip)] if rotate else [])
            for suffix, fn in views:
                d = out_root / f"{folder.name}_{i:04d}{suffix}"
                d.mkdir(exist_ok=True)
                for j in range(3):
                    write_ldr(d / f"{j}.tif", fn(scene["ldrs"][j, y:y + size, x:x + size]) * (ldr_scale / 65536.0))
                write_hdr(d / "label.hdr", fn(scene["label"][y:y + size, x:x + size]))
                write_exposures(d / "exposure.txt", stops)
                count += 1
    return count


class KalantariCrops:
    """Training samples from crop folders (``write_training_crops`` layout).

    ``sample(i)`` -> (x1, x2, x3 float32 (6, S, S), label float32 (3, S, S)). Unreadable crops are
    skipped (the next readable one is used) and counted in ``skipped`` with a warning.
    """

    def __init__(self, crop_root, input_order="hdr_first", ldr_scale=65536.0):
        root = Path(crop_root)
        if not root.is_dir():
            raise HDRDataError(f"{root}: crop folder not found")
        self.dirs = sorted(p for p in root.iterdir() if (p / "exposure.txt").exists())
        if not self.dirs:
            raise HDRDataError(f"{root}: no crop folders (each with 0.tif 1.tif 2.tif label.hdr exposure.txt)")
        self.input_order, self.ldr_scale = input_order, ldr_scale
        self.skipped = 0

    def __len__(self):
        return len(self.dirs)

    def read(self, i):
        scene = read_scene(self.dirs[i], self.ldr_scale)
        x = scene_inputs(scene["ldrs"], scene["exposures"], self.input_order)
        return (*x, np.ascontiguousarray(scene["label"].transpose(2, 0, 1)))

    def sample(self, i):
        for step in range(len(self.dirs)):
            j = (i + step) % len(self.dirs)
            try:
                return self.read(j)
            except (HDRDataError, OSError) as e:
                self.skipped += 1
                warnings.warn(f"skipping unreadable HDR crop ({self.skipped} so far): {e}")
        raise HDRDataError(f"no readable crop among {len(self.dirs)} folders")


def pad_to_multiple(x, multiple, value=1.0):
    """Pad (C, H, W) at the bottom and right with ``value`` to multiples of ``multiple``."""
    c, h, w = x.shape
    ph, pw = math.ceil(h / multiple) * multiple - h, math.ceil(w / multiple) * multiple - w
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="constant", constant_values=value)


def tiled_predict(predict, inputs, tile=256, pad_value=1.0, batch=1):
    """The test protocol: pad each (6, H, W) input with ``pad_value`` to multiples of ``tile``, run
    ``predict(x1, x2, x3)`` (numpy (b, 6, tile, tile) each -> (b, 3, tile, tile)) on the
    non-overlapping tiles, ``batch`` tiles at a time, and stitch and crop back to (3, H, W)."""
    _, h, w = inputs[0].shape
    padded = [pad_to_multiple(x, tile, pad_value) for x in inputs]
    hp, wp = padded[0].shape[1:]
    corners = [(y, x) for y in range(0, hp, tile) for x in range(0, wp, tile)]
    out = np.zeros((3, hp, wp), dtype=np.float32)
    for s in range(0, len(corners), batch):
        group = corners[s:s + batch]
        if len(group) < batch:  # keep a static batch: repeat the last tile
            group = group + [group[-1]] * (batch - len(group))
        xs = [np.stack([p[:, y:y + tile, x:x + tile] for y, x in group]) for p in padded]
        pred = np.asarray(predict(*xs))
        for (y, x), tile_out in zip(group, pred):
            out[:, y:y + tile, x:x + tile] = tile_out
    return out[:, :h, :w]


def data_cache_root():
    """``$NOAH_MS_DATA`` or ``~/.cache/noah-ms/data``."""
    return Path(os.environ.get("NOAH_MS_DATA") or Path.home() / ".cache" / "noah-ms" / "data")
