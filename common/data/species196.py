"""Species196 manifests, taxonomy, local image store and the image dataset (framework-free).

Release format (``Species196_L_v0.1/species196L_{train,val}.json``, COCO-like, images as URLs):

- ``images[]``: ``id``, ``file_name`` (no extension), ``origin_url`` (the extension is taken from
  the URL path); optional ``category_id`` / ``category_name``, ``width``, ``height``.
- ``categories[]``: ``id``, ``name`` (genus level and NOT unique: classes are keyed by id, never
  by name), ``supercategory`` (Insecta, Weeds, Mollusca).
- ``annotations[]``: ``image_id``, ``category_id``, ``bbox`` = [x, y, w, h] in pixels.

An image's label is its annotations' category id; without annotations, the image's own
``category_id``, else its ``category_name`` when that name is unique among the categories.
Images with no usable label, with annotations of several categories, or with an ambiguous name are
skipped and counted per reason (``Manifest.skipped``). A malformed record (missing or mistyped
field, duplicate id, unknown category, bad box) raises :class:`Species196FormatError` naming the
file, the record and the field.

Taxonomy CSV (optional): columns ``Scientific name``, ``Common name``, ``Class``, ``Order``,
``Family``, ``Genus``; rows are joined to categories by a ``category_id`` column when present,
else by ``Scientific name`` == category ``name`` (an error when that name is duplicated). An
optional ``Alternate names`` column (``;``-separated) feeds the zero-shot answer parser.

Local images live in an :class:`ImageStore`: content-addressed objects
``objects/<sha[:2]>/<sha256><ext>`` and ``index.json`` (file_name -> sha256, object, url, bytes),
written by ``scripts/download_species196.py`` and by the fixture generator. Images absent from the
store are "unavailable" (dead URLs): they are left out and counted in the availability rate.
"""
import csv
import hashlib
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps

from common.atomic import atomic_path

log = logging.getLogger(__name__)

DATASET_VERSION = "v0.1"
SUPERCATEGORIES = ("Insecta", "Weeds", "Mollusca")
TAXONOMY_LEVELS = ("class", "order", "family", "genus")
TAXONOMY_COLUMNS = {"Scientific name": "scientific_name", "Common name": "common_name", "Class": "class",
                    "Order": "order", "Family": "family", "Genus": "genus"}
ALTERNATES_COLUMN = "Alternate names"
CROP_MODES = ("full", "bbox")
KNOWN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class Species196FormatError(ValueError):
    """A manifest, taxonomy or label-map file does not have the expected structure."""


@dataclass(frozen=True)
class Category:
    """One class. ``taxonomy`` maps each of TAXONOMY_LEVELS to a name (or None when unknown)."""
    id: int
    name: str
    supercategory: str
    scientific_name: str = None
    common_name: str = None
    alternates: tuple = ()
    taxonomy: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def display_name(self):
        """Unique, readable label: scientific name when known, else ``name#id``."""
        return self.scientific_name or f"{self.name}#{self.id}"


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image: ``bbox`` is (x, y, w, h) in pixels or None."""
    id: int
    file_name: str
    url: str
    ext: str
    category_id: int
    bbox: tuple = None


@dataclass
class Manifest:
    """A parsed manifest: ``categories`` by id, labelled ``images``, ``skipped`` counts per reason."""
    path: Path
    categories: dict
    images: list
    skipped: Counter
    unlabeled: list = field(default_factory=list)

    def category(self, cid):
        return self.categories[cid]


def _err(path, where, msg):
    return Species196FormatError(f"{path}: {where}: {msg}")


def _field(rec, key, types, path, where, required=True):
    if key not in rec or rec[key] is None:
        if required:
            raise _err(path, where, f"field '{key}' is missing")
        return None
    value = rec[key]
    if not isinstance(value, types) or isinstance(value, bool):
        names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise _err(path, where, f"field '{key}' must be {names}, got {type(value).__name__} {value!r}")
    return value


def url_extension(url, default=".jpg"):
    """Lower-case extension of the URL path (``.JPG`` -> ``.jpg``); ``default`` when the path has none
    or one that is not an image extension."""
    ext = os.path.splitext(unquote(urlparse(url).path))[1].lower()
    return ext if ext in KNOWN_EXTENSIONS else default


def _parse_bbox(value, path, where):
    if not isinstance(value, (list, tuple)) or len(value) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _err(path, where, f"field 'bbox' must be [x, y, w, h] numbers, got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise _err(path, where, f"field 'bbox' {value!r} needs x, y >= 0 and w, h > 0")
    return (x, y, w, h)


def read_taxonomy(path):
    """Rows of a taxonomy CSV as dicts with keys ``category_id`` (int or None), ``scientific_name``,
    ``common_name``, ``class``, ``order``, ``family``, ``genus``, ``alternates`` (tuple)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"taxonomy CSV not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in TAXONOMY_COLUMNS if c not in header]
        if missing:
            raise Species196FormatError(f"{path}: missing columns {missing} (have {header})")
        rows = []
        for i, raw in enumerate(reader, start=2):
            row = {v: (raw[k] or "").strip() or None for k, v in TAXONOMY_COLUMNS.items()}
            if not row["scientific_name"]:
                raise Species196FormatError(f"{path}: line {i}: 'Scientific name' is empty")
            cid = (raw.get("category_id") or "").strip()
            try:
                row["category_id"] = int(cid) if cid else None
            except ValueError:
                raise Species196FormatError(f"{path}: line {i}: 'category_id' must be an integer, got {cid!r}") from None
            alts = raw.get(ALTERNATES_COLUMN) or ""
            row["alternates"] = tuple(a.strip() for a in alts.split(";") if a.strip())
            rows.append(row)
    return rows


def _join_taxonomy(categories, rows, path):
    by_name = {}
    for c in categories.values():
        by_name.setdefault(c.name, []).append(c.id)
    out = dict(categories)
    for row in rows:
        if row["category_id"] is not None:
            cid = row["category_id"]
            if cid not in categories:
                raise Species196FormatError(f"{path}: category_id {cid} ({row['scientific_name']}) is not a "
                                            f"category of the manifest")
        else:
            ids = by_name.get(row["scientific_name"], [])
            if len(ids) > 1:
                raise Species196FormatError(f"{path}: 'Scientific name' {row['scientific_name']!r} matches categories "
                                            f"{ids} (names repeat); add a category_id column")
            if not ids:
                continue
            cid = ids[0]
        c = out[cid]
        out[cid] = Category(c.id, c.name, c.supercategory, row["scientific_name"], row["common_name"],
                            row["alternates"], {lvl: row[lvl] for lvl in TAXONOMY_LEVELS})
    return out


def load_manifest(path, taxonomy_csv=None, require_categories=True):
    """Parse a Species196 JSON manifest (see the module docstring) into a :class:`Manifest`.

    ``require_categories=False`` accepts an unlabelled manifest (Species196-U style: ``images``
    only); its images are returned in ``Manifest.unlabeled`` as ImageRecords with category_id -1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Species196 manifest not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise Species196FormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise Species196FormatError(f"{path}: the top level must be an object, got {type(data).__name__}")
    if not isinstance(data.get("images"), list):
        raise Species196FormatError(f"{path}: key 'images' must be a list")
    cats_raw = data.get("categories")
    if cats_raw is None and not require_categories:
        cats_raw = []
    if not isinstance(cats_raw, list):
        raise Species196FormatError(f"{path}: key 'categories' must be a list")
    categories = {}
    for i, c in enumerate(cats_raw):
        where = f"categories[{i}]"
        if not isinstance(c, dict):
            raise _err(path, where, f"must be an object, got {type(c).__name__}")
        cid = _field(c, "id", int, path, where)
        name = _field(c, "name", str, path, where)
        sup = _field(c, "supercategory", str, path, where)
        if cid in categories:
            raise _err(path, where, f"duplicate category id {cid}")
        categories[cid] = Category(cid, name, sup, taxonomy={lvl: None for lvl in TAXONOMY_LEVELS})
    if require_categories and not categories:
        raise Species196FormatError(f"{path}: 'categories' is empty")

    names = Counter(c.name for c in categories.values())
    by_unique_name = {c.name: c.id for c in categories.values() if names[c.name] == 1}
    anns = {}
    ann_list = data.get("annotations", [])
    if not isinstance(ann_list, list):
        raise Species196FormatError(f"{path}: key 'annotations' must be a list")
    for i, a in enumerate(ann_list):
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise _err(path, where, f"must be an object, got {type(a).__name__}")
        iid = _field(a, "image_id", int, path, where)
        cid = _field(a, "category_id", int, path, where)
        if cid not in categories:
            raise _err(path, where, f"category_id {cid} is not among the {len(categories)} categories")
        box = _parse_bbox(a["bbox"], path, where) if a.get("bbox") is not None else None
        anns.setdefault(iid, []).append((cid, box))

    images, unlabeled, skipped, seen_ids, seen_files = [], [], Counter(), set(), set()
    for i, im in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(im, dict):
            raise _err(path, where, f"must be an object, got {type(im).__name__}")
        iid = _field(im, "id", int, path, where)
        where = f"images[{i}] (id {iid})"
        fname = _field(im, "file_name", str, path, where)
        url = _field(im, "origin_url", str, path, where)
        if not fname or "/" in fname or "\\" in fname or fname.startswith("."):
            raise _err(path, where, f"field 'file_name' {fname!r} must be a plain file name")
        if iid in seen_ids:
            raise _err(path, where, f"duplicate image id {iid}")
        if fname in seen_files:
            raise _err(path, where, f"duplicate file_name {fname!r}")
        seen_ids.add(iid)
        seen_files.add(fname)
        ext = url_extension(url)
        own_cid = _field(im, "category_id", int, path, where, required=False)
        own_name = _field(im, "category_name", str, path, where, required=False)
        entries = anns.get(iid, [])
        cids = sorted({c for c, _ in entries})
        if len(cids) > 1:
            skipped["several_categories"] += 1
            continue
        if cids:
            cid = cids[0]
            boxes = [b for c, b in entries if b is not None]
            box = max(boxes, key=lambda b: b[2] * b[3]) if boxes else None
        elif own_cid is not None:
            if own_cid not in categories:
                raise _err(path, where, f"category_id {own_cid} is not among the {len(categories)} categories")
            cid, box = own_cid, None
        elif own_name is not None and categories:
            if names[own_name] > 1:
                skipped["ambiguous_name"] += 1
                continue
            if own_name not in by_unique_name:
                raise _err(path, where, f"category_name {own_name!r} is not a category name")
            cid, box = by_unique_name[own_name], None
        else:
            if not require_categories:
                unlabeled.append(ImageRecord(iid, fname, url, ext, -1, None))
            else:
                skipped["no_label"] += 1
            continue
        images.append(ImageRecord(iid, fname, url, ext, cid, box))
    if taxonomy_csv is not None:
        categories = _join_taxonomy(categories, read_taxonomy(taxonomy_csv), taxonomy_csv)
    return Manifest(path, categories, images, skipped, unlabeled)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


class ImageStore:
    """Local copies of manifest images: content-addressed objects plus ``index.json``.

    ``index.json``: ``{file_name: {"sha256", "object" (relative path), "url", "bytes"}}``. A store
    without an index falls back to ``<root>/<file_name><ext>`` files (any image extension), the
    layout of third-party download scripts.
    """

    INDEX = "index.json"

    def __init__(self, root):
        self.root = Path(root)
        self._lock = threading.Lock()
        idx = self.root / self.INDEX
        if idx.is_file():
            try:
                self.index = json.loads(idx.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise Species196FormatError(f"{idx}: not valid JSON ({e})") from None
            if not isinstance(self.index, dict):
                raise Species196FormatError(f"{idx}: must map file_name -> entry")
        else:
            self.index = {}
        self._loose = None

    def _loose_files(self):
        if self._loose is None:
            self._loose = {}
            if self.root.is_dir():
                for p in self.root.rglob("*"):
                    if p.is_file() and p.suffix.lower() in KNOWN_EXTENSIONS and "objects" not in p.parts:
                        self._loose.setdefault(p.stem, p)
        return self._loose

    def path(self, file_name):
        """Local file of ``file_name``, or None when the image is not available."""
        entry = self.index.get(file_name)
        if entry is not None:
            p = self.root / entry["object"]
            return p if p.is_file() else None
        return self._loose_files().get(file_name)

    def verify(self, file_name):
        """True when the stored object exists and its sha256 matches the index."""
        entry = self.index.get(file_name)
        p = self.path(file_name)
        if entry is None or p is None:
            return False
        return sha256_bytes(p.read_bytes()) == entry["sha256"]

    def add(self, file_name, data, url, ext):
        """Store ``data`` (bytes) for ``file_name`` atomically; returns its sha256."""
        digest = sha256_bytes(data)
        rel = Path("objects") / digest[:2] / f"{digest}{ext.lower()}"
        target = self.root / rel
        if not target.is_file():
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        with self._lock:
            self.index[file_name] = {"sha256": digest, "object": rel.as_posix(), "url": url, "bytes": len(data)}
        return digest

    def save_index(self):
        with self._lock:
            text = json.dumps(self.index, indent=0, sort_keys=True)
        with atomic_path(self.root / self.INDEX) as tmp:
            tmp.write_text(text, encoding="utf-8")


def load_rgb_exif(path):
    """Decode to PIL RGB, applying the EXIF orientation (raises on unreadable files)."""
    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


def crop_box(img, bbox, margin=0.0):
    """Crop (x, y, w, h) grown by ``margin`` x its size on each side, clipped to the image; the
    pixel box is ``floor(x0), floor(y0), ceil(x1), ceil(y1)`` and never empty."""
    x, y, w, h = bbox
    x0, y0 = max(0.0, x - margin * w), max(0.0, y - margin * h)
    x1, y1 = min(float(img.width), x + w + margin * w), min(float(img.height), y + h + margin * h)
    left, top = int(np.floor(x0)), int(np.floor(y0))
    right, bottom = max(left + 1, int(np.ceil(x1))), max(top + 1, int(np.ceil(y1)))
    return img.crop((left, top, min(right, img.width), min(bottom, img.height)))


def label_map_records(categories, class_ids, version=DATASET_VERSION):
    """JSON-able label-id mapping file content (identical for both frameworks)."""
    rows = []
    for idx, cid in enumerate(class_ids):
        c = categories[cid]
        rows.append({"index": idx, "category_id": cid, "name": c.name, "supercategory": c.supercategory,
                     "scientific_name": c.scientific_name, "common_name": c.common_name,
                     **{lvl: c.taxonomy.get(lvl) for lvl in TAXONOMY_LEVELS}})
    return {"dataset_version": version, "num_classes": len(class_ids), "classes": rows}


def write_label_map(path, categories, class_ids, version=DATASET_VERSION):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(label_map_records(categories, class_ids, version), indent=1, ensure_ascii=False),
                       encoding="utf-8")


def read_label_map(path):
    """Category ids in class-index order from a label-map file written by :func:`write_label_map`."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise Species196FormatError(f"{path}: expected {{'classes': [{{'index', 'category_id', ...}}]}}")
    ids = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or r.get("index") != i or not isinstance(r.get("category_id"), int):
            raise Species196FormatError(f"{path}: classes[{i}] must have index {i} and an integer category_id")
        ids.append(r["category_id"])
    return ids


def class_counts(images):
    """``{category_id: number of images}``."""
    return Counter(r.category_id for r in images)


def small_classes(images, categories, min_images):
    """Sorted ``[(category_id, count)]`` of categories with fewer than ``min_images`` images
    (categories with no image at all included)."""
    counts = class_counts(images)
    return sorted((cid, counts.get(cid, 0)) for cid in categories if counts.get(cid, 0) < min_images)


class Species196Dataset:
    """Labelled images available in an :class:`ImageStore`, duck-typed like ``ImageFolder`` so the
    foundation's ``ClassificationBatches`` iterates it.

    Args:
        records: ImageRecords (category_id -1 allowed when ``class_ids`` is None: unlabelled data).
        store: the ImageStore holding the files.
        class_ids: category id of each class index; records of other categories are dropped and
            counted in ``dropped_classes``.
        crop_mode: 'full' (whole image) or 'bbox' (the annotated box, grown by ``bbox_margin``;
            records without a box fall back to the whole image and are counted in ``no_box``).
        name: label for messages (e.g. the manifest path).
    """

    def __init__(self, records, store, class_ids=None, crop_mode="full", bbox_margin=0.0, name="species196"):
        if crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {crop_mode!r}")
        self.root = name
        self.store = store
        self.crop_mode = crop_mode
        self.bbox_margin = float(bbox_margin)
        self.class_ids = list(class_ids) if class_ids is not None else None
        index = {cid: i for i, cid in enumerate(self.class_ids or [])}
        self.classes = [str(c) for c in self.class_ids] if self.class_ids is not None else ["unlabeled"]
        self.samples, self.records = [], []
        self.unavailable, self.dropped_classes, self.no_box = 0, 0, 0
        for r in records:
            if self.class_ids is not None and r.category_id not in index:
                self.dropped_classes += 1
                continue
            p = store.path(r.file_name)
            if p is None:
                self.unavailable += 1
                continue
            self.samples.append((p, index.get(r.category_id, -1)))
            self.records.append(r)
            if crop_mode == "bbox" and r.bbox is None:
                self.no_box += 1
        if not self.samples:
            raise ValueError(f"{name}: no available images ({self.unavailable} not in the image store "
                             f"{store.root}, {self.dropped_classes} of dropped classes)")
        self.targets = np.array([t for _, t in self.samples], dtype=np.int32)
        self._bad = set()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.samples)

    @property
    def num_skipped(self):
        return len(self._bad)

    @property
    def availability(self):
        """Fraction of the (kept-class) records whose image is in the store."""
        total = len(self.samples) + self.unavailable
        return len(self.samples) / total if total else 0.0

    def image(self, index):
        """PIL RGB of sample ``index`` after the crop mode (raises on unreadable files)."""
        path, _ = self.samples[index]
        img = load_rgb_exif(path)
        box = self.records[index].bbox
        if self.crop_mode == "bbox" and box is not None:
            img = crop_box(img, box, self.bbox_margin)
        return img

    def load(self, index):
        """``(PIL RGB image, class index)`` of sample ``index``, or of the next readable sample."""
        n = len(self.samples)
        for k in range(n):
            i = (index + k) % n
            if i in self._bad:
                continue
            try:
                return self.image(i), self.samples[i][1]
            except Exception as e:  # any decoder error means "unreadable"; never stop the epoch
                with self._lock:
                    self._bad.add(i)
                    count = len(self._bad)
                log.warning("Species196: skipped unreadable image %s (%d skipped so far in %s): %s",
                            self.samples[i][0], count, self.root, e)
        raise RuntimeError(f"{self.root}: no readable image left ({n} files, all unreadable)")
