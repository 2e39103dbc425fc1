"""Built-in super-resolution demo pairs cut from photos shipped inside Python packages
(scikit-image, scikit-learn, matplotlib); nothing is downloaded.

Training photos are used whole (mod-cropped to the scale); the held-out photos (``coffee``,
``rocket``, ``grace_hopper``, never seen in training) give a centred ``eval_hr`` x ``eval_hr`` HR
crop each. LR images are the MATLAB bicubic (``common.sr_resize``) of the HR image, rounded to
uint8, as the DIV2K/benchmark LR sets are made. JPEG sources (china, flower, rocket, grace_hopper,
hubble) carry block artefacts. The result is deterministic (no random choices).
"""
import functools

import numpy as np

from common.data.sr_data import bicubic_lr, mod_crop

# (name, package, loader)
TRAIN_PHOTOS = (
    ("astronaut", "skimage", "astronaut"),
    ("chelsea", "skimage", "chelsea"),
    ("hubble", "skimage", "hubble_deep_field"),
    ("immunohistochemistry", "skimage", "immunohistochemistry"),
    ("colorwheel", "skimage", "colorwheel"),
    ("camera", "skimage", "camera"),
    ("coins", "skimage", "coins"),
    ("china", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
)
HELD_OUT_PHOTOS = (
    ("coffee", "skimage", "coffee"),
    ("rocket", "skimage", "rocket"),
    ("grace_hopper", "matplotlib", "grace_hopper.jpg"),
)


@functools.lru_cache(maxsize=None)
def load_photo(package, name):
    """A shipped photo as read-only uint8 (H, W, 3) RGB (grey photos repeated, alpha dropped); cached."""
    if package == "skimage":
        import skimage.data
        img = getattr(skimage.data, name)()
    elif package == "sklearn":
        from sklearn.datasets import load_sample_image
        img = load_sample_image(name)
    elif package == "matplotlib":
        import matplotlib.cbook
        from PIL import Image
        with matplotlib.cbook.get_sample_data(name) as f, Image.open(f) as im:
            img = np.asarray(im.convert("RGB"))
    else:
        raise ValueError(f"unknown photo package '{package}'")
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3])
    img.flags.writeable = False
    return img


def _center_crop(img, size):
    h, w = img.shape[:2]
    size = min(size, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def demo_train_pairs(scale, max_side=None):
    """[(hr, lr)] uint8 pairs of the training photos; ``max_side`` centre-crops each photo first."""
    pairs = []
    for _, pkg, loader in TRAIN_PHOTOS:
        hr = load_photo(pkg, loader)
        if max_side:
            hr = _center_crop(hr, max_side)
        hr = np.ascontiguousarray(mod_crop(hr, scale))
        pairs.append((hr, bicubic_lr(hr, scale)))
    return pairs


def demo_eval_set(scale, eval_hr=192):
    """[(name, hr, lr)] uint8 held-out images: centred ``eval_hr`` HR crops (mod-cropped)."""
    out = []
    for name, pkg, loader in HELD_OUT_PHOTOS:
        hr = np.ascontiguousarray(mod_crop(_center_crop(load_photo(pkg, loader), eval_hr), scale))
        out.append((name, hr, bicubic_lr(hr, scale)))
    return out
