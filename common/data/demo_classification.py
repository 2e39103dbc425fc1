"""Built-in demo classification set cut from photos shipped inside scikit-image and scikit-learn.

Each class is one photo. The photo is divided into a 3 x 3 grid of cells; three cells, one per
row and column, are held out for validation and the other six feed training, so val crops come
from regions never seen in training. A sample is a random crop inside one cell (side 50-100 % of
the cell, aspect 4:5 to 5:4), resized to ``size`` px, with brightness/contrast jitter of +-20 %.
All draws come from ``np.random.default_rng([seed, class_index, split_index])``: the set is
identical on every machine with the same Pillow.

The set is written as an ImageFolder (``train/<class>/*.png``, ``val/<class>/*.png``) under
``$NOAH_MS_DATA`` or ``~/.cache/noah-ms/data``, in ``demo_cls_<hash of the parameters>``. It is
built in a temporary sibling folder and renamed into place, so a reader never sees a partial set
and concurrent builders do not clash. Nothing is downloaded.
"""
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SCHEME_VERSION = 1
# (class name, package, loader name)
PHOTOS = (
    ("astronaut", "skimage", "astronaut"),
    ("camera", "skimage", "camera"),
    ("chelsea", "skimage", "chelsea"),
    ("coffee", "skimage", "coffee"),
    ("rocket", "skimage", "rocket"),
    ("hubble", "skimage", "hubble_deep_field"),
    ("china", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
)
GRID = 3
VAL_CELLS = ((0, 0), (1, 2), (2, 1))
DEFAULT_PARAMS = {"train_per_class": 80, "val_per_class": 20, "size": 72, "seed": 0}


def cache_root():
    """Folder holding built-in data sets: ``$NOAH_MS_DATA`` or ``~/.cache/noah-ms/data``."""
    return Path(os.environ.get("NOAH_MS_DATA") or Path.home() / ".cache" / "noah-ms" / "data")


def load_photo(package, name):
    """A shipped photo as uint8 (H, W, 3) RGB."""
    if package == "skimage":
        import skimage.data
        img = getattr(skimage.data, name)()
    elif package == "sklearn":
        from sklearn.datasets import load_sample_image
        img = load_sample_image(name)
    else:
        raise ValueError(f"unknown photo package '{package}'")
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def split_cells(height, width, split):
    """Grid cells ``(y0, y1, x0, x1)`` of ``split`` ('train' or 'val') for an image of that size."""
    ys = [round(height * k / GRID) for k in range(GRID + 1)]
    xs = [round(width * k / GRID) for k in range(GRID + 1)]
    cells = [(ys[r], ys[r + 1], xs[c], xs[c + 1]) for r in range(GRID) for c in range(GRID)
             if ((r, c) in VAL_CELLS) == (split == "val")]
    return cells


def random_view(photo, cells, rng, size):
    """One jittered crop from a random cell of ``cells``, resized to uint8 (size, size, 3)."""
    y0, y1, x0, x1 = cells[int(rng.integers(len(cells)))]
    ch, cw = y1 - y0, x1 - x0
    side = rng.uniform(0.5, 1.0) * min(ch, cw)
    aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    h = max(1, min(ch, round(side / math.sqrt(aspect))))
    w = max(1, min(cw, round(side * math.sqrt(aspect))))
    top = y0 + int(rng.integers(0, ch - h + 1))
    left = x0 + int(rng.integers(0, cw - w + 1))
    crop = Image.fromarray(photo[top:top + h, left:left + w]).resize((size, size), Image.BILINEAR)
    arr = np.asarray(crop, dtype=np.float32) * rng.uniform(0.8, 1.2)
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.8, 1.2) + mean
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def write_demo_classification(out_dir, train_per_class, val_per_class, size, seed):
    """Write the demo ImageFolder into ``out_dir`` (must exist); returns the per-split counts."""
    out_dir = Path(out_dir)
    counts = {"train": train_per_class, "val": val_per_class}
    for ci, (cls, package, name) in enumerate(PHOTOS):
        photo = load_photo(package, name)
        for si, (split, n) in enumerate(counts.items()):
            rng = np.random.default_rng([seed, ci, si])
            cells = split_cells(photo.shape[0], photo.shape[1], split)
            folder = out_dir / split / cls
            folder.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(random_view(photo, cells, rng, size)).save(folder / f"{cls}_{k:04d}.png")
    return counts


def demo_classification_root(cache_dir=None, **params):
    """Path of the demo set (with ``train/`` and ``val/``), building it on first use.

    ``params`` override ``DEFAULT_PARAMS`` (train_per_class, val_per_class, size, seed).
    """
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise KeyError(f"demo_classification_root: unknown parameters {sorted(unknown)} "
                       f"(valid: {sorted(DEFAULT_PARAMS)})")
    p = {**DEFAULT_PARAMS, **params}
    spec = {"version": SCHEME_VERSION, "photos": PHOTOS, "grid": GRID, "val_cells": VAL_CELLS, **p}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    final = base / f"demo_cls_{digest}"
    if final.is_dir():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=base))
    try:
        write_demo_classification(tmp, p["train_per_class"], p["val_per_class"], p["size"], p["seed"])
        (tmp / "meta.json").write_text(json.dumps({**spec, "classes": [c for c, _, _ in PHOTOS]}, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # another process won the race only if final now exists
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
