"""A small Species196-format data set cut from photos shipped inside Python packages.

Six classes (3 supercategories x 2), each one photo (scikit-image, scikit-learn). Two classes share
the genus ``name`` "Cydia" under different category ids, as the real release repeats names. Every
image is a jittered crop of the class photo (``demo_classification.random_view``) pasted at a random
place on a background cut from a distractor photo (the Hubble deep field, the same for all
classes), so the COCO box ``[x, y, w, h]`` marks exactly the object and ``crop_mode: bbox`` has
something to do. Validation crops come from photo cells never used for training or unlabelled
images (the 3 x 3 grid split of ``demo_classification``).

Written layout (``root`` = the returned folder)::

    Species196_L_v0.1/species196L_train.json   20 labelled images per class (+ edge cases below)
    Species196_L_v0.1/species196L_val.json     10 per class
    Species196_L_v0.1/Taxonomy.csv             scientific/common names, alternates, class..genus
    Species196_U/species196U.json              100 unlabelled images (images[] only)
    source/<file_name><ext>                    what the fake ``origin_url``s point at
    images/                                    ImageStore (objects + index.json): the "downloaded" copy

Edge cases in the train manifest: one image labelled only by a unique ``category_name``, one with
the ambiguous name "Cydia" (skipped), one with no label (skipped), one whose URL is dead (listed,
never stored), and mixed suffixes (.png, .jpg, .JPG, .jpeg). ``origin_url`` = ``url_base`` +
file name + suffix; the default base is not resolvable, nothing is downloaded.
"""
import csv
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .demo_classification import cache_root, load_photo, random_view, split_cells
from .species196 import ImageStore

SCHEME_VERSION = 2
DEFAULT_URL_BASE = "http://species196-fixture.invalid/source/"
# (category id, name, supercategory, photo package, photo, scientific name, common name, alternates, class,
#  order, family, genus)
CLASSES = (
    (3, "Cydia", "Insecta", "skimage", "chelsea", "Cydia pomonella", "codling moth", ("codlin moth", "apple worm"),
     "Insecta", "Lepidoptera", "Tortricidae", "Cydia"),
    (7, "Cydia", "Insecta", "skimage", "coffee", "Cydia funebrana", "plum fruit moth", ("red plum maggot",),
     "Insecta", "Lepidoptera", "Tortricidae", "Cydia"),
    (11, "Solanum", "Weeds", "sklearn", "flower.jpg", "Solanum rostratum", "buffalobur",
     ("buffalo bur", "Kansas thistle"), "Magnoliopsida", "Solanales", "Solanaceae", "Solanum"),
    (12, "Avena", "Weeds", "sklearn", "china.jpg", "Avena sterilis", "sterile oat", ("animated oat",),
     "Liliopsida", "Poales", "Poaceae", "Avena"),
    (25, "Helix", "Mollusca", "skimage", "astronaut", "Helix pomatia", "Roman snail",
     ("Burgundy snail", "escargot"), "Gastropoda", "Stylommatophora", "Helicidae", "Helix"),
    (31, "Achatina", "Mollusca", "skimage", "rocket", "Achatina fulica", "giant African snail",
     ("giant African land snail",), "Gastropoda", "Stylommatophora", "Achatinidae", "Achatina"),
)
BACKGROUND = ("skimage", "hubble_deep_field")
SUFFIXES = (".png", ".jpg", ".JPG", ".jpeg", ".png", ".png")
DEFAULT_PARAMS = {"train_per_class": 20, "val_per_class": 10, "unlabeled": 100, "seed": 0,
                  "url_base": DEFAULT_URL_BASE}
L_DIR, U_DIR = "Species196_L_v0.1", "Species196_U"
TRAIN_JSON, VAL_JSON, U_JSON, TAXONOMY_CSV = "species196L_train.json", "species196L_val.json", "species196U.json", \
    "Taxonomy.csv"


@functools.lru_cache(maxsize=None)
def _photo(package, name):
    photo = load_photo(package, name)
    photo.setflags(write=False)
    return photo


def _encode(arr, ext):
    buf = io.BytesIO()
    fmt = "PNG" if ext.lower() == ".png" else "JPEG"
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def compose(photo, background, cells, rng):
    """One fixture image: uint8 (H, W, 3) and its box [x, y, w, h] (the pasted object)."""
    height, width = int(rng.integers(80, 113)), int(rng.integers(96, 129))
    by = int(rng.integers(0, background.shape[0] - height + 1))
    bx = int(rng.integers(0, background.shape[1] - width + 1))
    canvas = background[by:by + height, bx:bx + width].copy()
    side = int(rng.integers(int(0.5 * min(height, width)), int(0.8 * min(height, width)) + 1))
    obj = random_view(photo, cells, rng, side)
    y, x = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    canvas[y:y + side, x:x + side] = obj
    return canvas, [x, y, side, side]


def write_fixture(out_dir, train_per_class, val_per_class, unlabeled, seed, url_base):
    """Write the fixture into ``out_dir`` (must exist); returns a summary dict."""
    out = Path(out_dir)
    for d in (L_DIR, U_DIR, "source"):
        (out / d).mkdir(parents=True, exist_ok=True)
    store = ImageStore(out / "images")
    background = _photo(*BACKGROUND)
    photos = [_photo(c[3], c[4]) for c in CLASSES]
    cats = [{"id": c[0], "name": c[1], "supercategory": c[2]} for c in CLASSES]
    next_id = [1]

    def add_image(arr, stem, k, store_it=True):
        ext = SUFFIXES[k % len(SUFFIXES)]
        data = _encode(arr, ext)
        iid = next_id[0]
        next_id[0] += 1
        url = f"{url_base}{stem}{ext}"
        if store_it:
            (out / "source" / f"{stem}{ext}").write_bytes(data)
            store.add(stem, data, url, ext)
        return {"id": iid, "file_name": stem, "origin_url": url, "width": int(arr.shape[1]),
                "height": int(arr.shape[0])}

    splits = {"train": (train_per_class, 0), "val": (val_per_class, 1)}
    manifests = {}
    for split, (n, si) in splits.items():
        images, anns = [], []
        for ci, c in enumerate(CLASSES):
            rng = np.random.default_rng([seed, ci, si])
            cells = split_cells(photos[ci].shape[0], photos[ci].shape[1], split)
            for k in range(n):
                arr, box = compose(photos[ci], background, cells, rng)
                rec = add_image(arr, f"{split}_{c[0]:03d}_{k:04d}", k)
                if split == "train" and c[1] == "Avena" and k == n - 1:
                    rec["category_name"] = "Avena"          # label by a unique name, no annotation
                else:
                    anns.append({"id": len(anns) + 1, "image_id": rec["id"], "category_id": c[0], "bbox": box})
                images.append(rec)
        if split == "train":
            rng = np.random.default_rng([seed, 99])
            cells = split_cells(photos[0].shape[0], photos[0].shape[1], "train")
            amb = add_image(compose(photos[0], background, cells, rng)[0], "train_ambiguous_name", 0)
            images.append({**amb, "category_name": "Cydia"})        # two categories are called Cydia
            images.append(add_image(compose(photos[1], background, cells, rng)[0], "train_no_label", 0))
            dead = add_image(compose(photos[2], background, cells, rng)[0], "train_dead_url", 0, store_it=False)
            anns.append({"id": len(anns) + 1, "image_id": dead["id"], "category_id": CLASSES[2][0],
                         "bbox": [1, 1, 20, 20]})
            images.append(dead)
        manifests[split] = {"info": {"version": "v0.1-fixture"}, "images": images, "annotations": anns,
                            "categories": cats}
    u_images = []
    for k in range(unlabeled):
        ci = k % len(CLASSES)
        rng = np.random.default_rng([seed, ci, 2, k])
        cells = split_cells(photos[ci].shape[0], photos[ci].shape[1], "train")
        u_images.append(add_image(compose(photos[ci], background, cells, rng)[0], f"u_{k:05d}", k))
    (out / L_DIR / TRAIN_JSON).write_text(json.dumps(manifests["train"], ensure_ascii=False), encoding="utf-8")
    (out / L_DIR / VAL_JSON).write_text(json.dumps(manifests["val"], ensure_ascii=False), encoding="utf-8")
    (out / U_DIR / U_JSON).write_text(json.dumps({"info": {"version": "v0.1-fixture"}, "images": u_images}),
                                      encoding="utf-8")
    with open(out / L_DIR / TAXONOMY_CSV, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["category_id", "Scientific name", "Common name", "Alternate names", "Class", "Order", "Family",
                    "Genus"])
        for c in CLASSES:
            w.writerow([c[0], c[5], c[6], ";".join(c[7]), *c[8:]])
    store.save_index()
    return {"train": len(manifests["train"]["images"]), "val": len(manifests["val"]["images"]),
            "unlabeled": unlabeled, "classes": len(CLASSES)}


def species196_fixture_root(cache_dir=None, **params):
    """Folder of the fixture (see the module docstring), built on first use under the data cache
    (``$NOAH_MS_DATA`` or ``~/.cache/noah-ms/data``) in a folder named by a hash of the parameters;
    built in a temporary sibling and renamed into place. ``params`` override ``DEFAULT_PARAMS``."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise KeyError(f"species196_fixture_root: unknown parameters {sorted(unknown)} (valid: {sorted(DEFAULT_PARAMS)})")
    p = {**DEFAULT_PARAMS, **params}
    spec = {"version": SCHEME_VERSION, "classes": CLASSES, "background": BACKGROUND, **p}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    final = base / f"species196_fixture_{digest}"
    if final.is_dir():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=base))
    try:
        write_fixture(tmp, p["train_per_class"], p["val_per_class"], p["unlabeled"], p["seed"], p["url_base"])
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
