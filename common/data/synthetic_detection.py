"""Built-in demo detection data: coloured circles/ellipses, rectangles and triangles on photo textures.

The set is COCO-format (``images/{train,val}/*.jpg`` + ``annotations/instances_{train,val}.json``),
generated deterministically from its parameters and cached under
``<cache_root>/synthetic_det_<hash>`` (default cache root ``~/.cache/noah-ms/data``). It is built in
a temporary folder next to the target and moved into place with one ``os.rename``, so concurrent
builders never leave a half-written set: the loser of the race discards its copy.

Backgrounds are random crops of photos shipped inside scikit-image and scikit-learn, muted so that
the saturated objects stay clearly visible; without those packages, generated noise textures are
used (the background source is part of the hash).
"""
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASS_NAMES = ("circle", "rectangle", "triangle")
# Per-class colour families (RGB): the class is readable from both shape and colour.
_PALETTES = (
    ((235, 45, 45), (250, 130, 30), (220, 40, 140)),
    ((40, 90, 240), (30, 200, 230), (120, 60, 230)),
    ((40, 210, 70), (230, 230, 40), (150, 240, 60)),
)
_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                   "immunohistochemistry", "grass", "gravel", "brick")
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SyntheticDetection:
    """Paths of a built synthetic set."""
    root: str
    train_images: str
    train_ann: str
    val_images: str
    val_ann: str
    class_names: tuple


def default_cache_root():
    return os.path.join(os.path.expanduser("~"), ".cache", "noah-ms", "data")


def synthetic_detection(num_train=400, num_val=80, img_size=256, seed=0, cache_root=None):
    """Build (or reuse) the synthetic set and return its paths.

    Args:
        num_train, num_val: image counts of the two splits.
        img_size: square image side in pixels.
        seed: generation seed.
        cache_root: parent folder of the cached set.
    """
    backgrounds, source = _backgrounds(seed)
    params = {"version": _FORMAT_VERSION, "num_train": int(num_train), "num_val": int(num_val),
              "img_size": int(img_size), "seed": int(seed), "backgrounds": source}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_root or default_cache_root())
    final = root / f"synthetic_det_{digest}"
    if not (final / "meta.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".synthetic_det_{digest}.", dir=root))
        try:
            for split, count in (("train", num_train), ("val", num_val)):
                _write_split(tmp, split, count, img_size, seed, backgrounds)
            (tmp / "meta.json").write_text(json.dumps(params, indent=1, sort_keys=True))
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / "meta.json").is_file():  # not a lost race: a real failure
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return SyntheticDetection(
        root=str(final),
        train_images=str(final / "images" / "train"), train_ann=str(final / "annotations" / "instances_train.json"),
        val_images=str(final / "images" / "val"), val_ann=str(final / "annotations" / "instances_val.json"),
        class_names=CLASS_NAMES)


def _backgrounds(seed):
    """List of RGB uint8 photos and a description of the source (for the hash)."""
    photos, names = [], []
    try:
        import skimage.data as skdata
        for name in _SKIMAGE_PHOTOS:
            try:
                img = np.asarray(getattr(skdata, name)())
            except Exception:  # a photo missing from this scikit-image build is simply not used
                continue
            photos.append(img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2))
            names.append(f"skimage.{name}")
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images
        for name, img in zip(("china", "flower"), load_sample_images().images):
            photos.append(np.asarray(img))
            names.append(f"sklearn.{name}")
    except ImportError:
        pass
    if photos:
        return [p[..., :3].astype(np.uint8) for p in photos], names
    rng = np.random.default_rng(seed)
    textures = []
    for _ in range(4):
        noise = rng.random((64, 64, 3)).astype(np.float32)
        textures.append((cv2.resize(noise, (512, 512), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8))
    return textures, ["noise"]


def _background(rng, backgrounds, size):
    photo = backgrounds[int(rng.integers(len(backgrounds)))]
    h, w = photo.shape[:2]
    side = int(min(h, w, size * rng.uniform(1.0, 2.0)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(photo[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    return (crop.astype(np.float32) * 0.45 + 70).astype(np.uint8)  # muted: objects stand out


def _shape_mask(rng, cls, size, img_size):
    """uint8 mask (img_size, img_size) of one random shape of class ``cls`` with extent ~``size``."""
    mask = np.zeros((img_size, img_size), np.uint8)
    cx, cy = rng.uniform(size / 2, img_size - size / 2, 2)
    if cls == 0:
        a = size / 2
        b = a * rng.uniform(0.6, 1.0)
        cv2.ellipse(mask, (int(cx), int(cy)), (int(a), int(b)), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif cls == 1:
        w = size * rng.uniform(0.6, 1.0)
        h = size * rng.uniform(0.6, 1.0)
        cv2.rectangle(mask, (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2)), 255, -1)
    else:
        base = rng.uniform(0, 2 * np.pi)
        angles = base + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
        pts = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _render(rng, img_size, backgrounds):
    """One RGB image and its objects as (class, [x1, y1, x2, y2]) with exclusive x2/y2."""
    img = _background(rng, backgrounds, img_size)
    objects = []
    for _ in range(int(rng.integers(2, 7))):
        for _attempt in range(20):
            cls = int(rng.integers(len(CLASS_NAMES)))
            mask = _shape_mask(rng, cls, rng.uniform(0.12, 0.38) * img_size, img_size)
            ys, xs = np.nonzero(mask)
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            if all(_iou(box, other) < 0.3 for _, other in objects):
                break
        else:
            continue
        colour = np.array(_PALETTES[cls][int(rng.integers(len(_PALETTES[cls])))], np.float32)
        colour = (colour * rng.uniform(0.85, 1.0)).astype(np.uint8)
        edge = cv2.subtract(mask, cv2.erode(mask, np.ones((3, 3), np.uint8))) > 0
        img[mask > 0] = colour
        img[edge] = colour // 3  # dark rim: the outline stays visible where shapes overlap
        objects.append((cls, box))
    return img, objects


def _write_split(root, split, count, img_size, seed, backgrounds):
    img_dir = root / "images" / split
    img_dir.mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    split_id = {"train": 0, "val": 1}[split]
    for i in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([seed, split_id, i]))
        img, objects = _render(rng, img_size, backgrounds)
        image_id = i + 1
        file_name = f"{image_id:06d}.jpg"
        cv2.imwrite(str(img_dir / file_name), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": image_id, "file_name": file_name, "width": img_size, "height": img_size})
        for cls, (x1, y1, x2, y2) in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0, "segmentation": []})
    categories = [{"id": c + 1, "name": name, "supercategory": "shape"} for c, name in enumerate(CLASS_NAMES)]
    with open(root / "annotations" / f"instances_{split}.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
