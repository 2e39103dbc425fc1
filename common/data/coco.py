"""COCO-format detection dataset: validated annotations, contiguous class indices, safe image reads.

Boxes are returned as float32 rows ``[class, x1, y1, x2, y2]`` in original-image pixels, with
``class`` the contiguous index of the category (categories sorted by id; for the 80 COCO classes
this is exactly the ``COCO80_TO_COCO91`` order). Crowd annotations are left out of the training
labels (pycocotools handles them at evaluation from the JSON itself).

Record-level problems (missing field, box outside the image, non-positive size, unknown category or
image id, missing image file) either raise ``CocoFormatError`` (``on_error='raise'``) or are
skipped and counted (``on_error='skip'``, the default); every message names the JSON file and the
record. Images that cannot be decoded at run time are skipped with a counted warning.
"""
import json
import logging
import math
import os
import threading
from collections import Counter

import cv2
import numpy as np
from PIL import Image

LOGGER = logging.getLogger(__name__)

# Contiguous index (0..79) -> COCO category id (1..90); ascending, so equal to "sorted ids".
COCO80_TO_COCO91 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)

_IMAGE_FIELDS = ("id", "file_name", "width", "height")
_ANN_FIELDS = ("id", "image_id", "category_id", "bbox")
_CATEGORY_FIELDS = ("id", "name")
_MAX_LOGGED = 10


class CocoFormatError(ValueError):
    """A COCO JSON file or one of its records is invalid; the message names the file and record."""


class CocoDetection:
    """Images and boxes of one COCO instances JSON.

    Args:
        images_dir: folder holding the ``file_name`` of every image record.
        ann_file: path of the instances JSON.
        on_error: ``'skip'`` (count and warn) or ``'raise'`` for invalid records.
        box_tolerance: pixels a box may extend past the image border; such boxes are clipped,
            boxes further out are invalid.
        keep_empty: keep images without (non-crowd) boxes as background samples.
        check_files: verify at start-up that every image file exists.
        cache_images: keep decoded images in memory (small data sets).

    Attributes:
        category_ids: COCO category id of each contiguous class index.
        class_names: category names in the same order.
        image_ids, file_names, shapes ((h, w) from the JSON), labels (list of (n, 5) float32).
        skip_counts: Counter of skipped records by reason; skip_messages: their messages.
    """

    def __init__(self, images_dir, ann_file, on_error="skip", box_tolerance=2.0, keep_empty=True,
                 check_files=True, cache_images=False):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.images_dir = str(images_dir)
        self.ann_file = str(ann_file)
        self.on_error = on_error
        self.box_tolerance = float(box_tolerance)
        self.skip_counts = Counter()
        self.skip_messages = []
        self._lock = threading.Lock()
        self._cache = {} if cache_images else None
        self._bad_images = set()

        data = self._read_json()
        self._parse_categories(data["categories"])
        images = self._parse_images(data["images"])
        boxes_per_image, self.crowd_count = self._parse_annotations(data.get("annotations", []), images)
        self._finalise(images, boxes_per_image, keep_empty, check_files)
        if self.skip_counts:
            LOGGER.warning("%s: skipped %s", self.ann_file, dict(self.skip_counts))

    # ----------------------------------------------------------------------------- parsing
    def _read_json(self):
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"COCO annotation file not found: {self.ann_file}")
        try:
            with open(self.ann_file, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise CocoFormatError(f"{self.ann_file}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise CocoFormatError(f"{self.ann_file}: top level must be an object, got {type(data).__name__}")
        for key in ("images", "categories"):
            if not isinstance(data.get(key), list):
                raise CocoFormatError(f"{self.ann_file}: missing top-level list '{key}'")
        if "annotations" in data and not isinstance(data["annotations"], list):
            raise CocoFormatError(f"{self.ann_file}: 'annotations' must be a list")
        return data

    def _problem(self, reason, message):
        message = f"{self.ann_file}: {message}"
        if self.on_error == "raise":
            raise CocoFormatError(message)
        self.skip_counts[reason] += 1
        self.skip_messages.append(message)
        if len(self.skip_messages) <= _MAX_LOGGED:
            LOGGER.warning("skipped: %s", message)

    def _parse_categories(self, categories):
        by_id = {}
        for i, cat in enumerate(categories):
            missing = [k for k in _CATEGORY_FIELDS if not isinstance(cat, dict) or k not in cat]
            if missing:
                raise CocoFormatError(f"{self.ann_file}: categories[{i}] is missing field(s) {missing}")
            if cat["id"] in by_id:
                raise CocoFormatError(f"{self.ann_file}: duplicate category id {cat['id']}")
            by_id[cat["id"]] = str(cat["name"])
        if not by_id:
            raise CocoFormatError(f"{self.ann_file}: 'categories' is empty")
        self.category_ids = sorted(by_id)
        self.class_names = [by_id[c] for c in self.category_ids]
        self.category_to_label = {c: i for i, c in enumerate(self.category_ids)}

    def _parse_images(self, records):
        images = {}
        self._skipped_image_ids = set()
        for i, rec in enumerate(records):
            missing = [k for k in _IMAGE_FIELDS if not isinstance(rec, dict) or k not in rec]
            if missing:
                rid = rec.get("id", "?") if isinstance(rec, dict) else "?"
                self._problem("missing_field", f"images[{i}] (image id={rid}) is missing field(s) {missing}")
                self._skipped_image_ids.add(rid)
                continue
            iid, w, h = rec["id"], rec["width"], rec["height"]
            if iid in images:
                raise CocoFormatError(f"{self.ann_file}: duplicate image id {iid} (images[{i}])")
            if not (_is_number(w) and _is_number(h)) or w <= 0 or h <= 0:
                self._problem("bad_image_size", f"image id={iid}: width/height must be positive, got {w}x{h}")
                self._skipped_image_ids.add(iid)
                continue
            images[iid] = (str(rec["file_name"]), int(h), int(w))
        return images

    def _parse_annotations(self, annotations, images):
        boxes = {iid: [] for iid in images}
        crowd = 0
        tol = self.box_tolerance
        for i, ann in enumerate(annotations):
            missing = [k for k in _ANN_FIELDS if not isinstance(ann, dict) or k not in ann]
            aid = ann.get("id", f"#{i}") if isinstance(ann, dict) else f"#{i}"
            if missing:
                self._problem("missing_field", f"annotation id={aid} (annotations[{i}]) is missing field(s) {missing}")
                continue
            iid, cid, bbox = ann["image_id"], ann["category_id"], ann["bbox"]
            where = f"annotation id={aid} (image id={iid})"
            if iid in self._skipped_image_ids:  # its image was already reported
                self.skip_counts["annotation_of_skipped_image"] += 1
                continue
            if iid not in images:
                self._problem("unknown_image", f"{where}: image id {iid} is not in 'images'")
                continue
            if cid not in self.category_to_label:
                self._problem("unknown_category", f"{where}: category_id {cid} is not in 'categories'")
                continue
            if ann.get("iscrowd", 0):
                crowd += 1
                continue
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
                self._problem("bad_bbox", f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
                continue
            x, y, w, h = (float(v) for v in bbox)
            if w <= 0 or h <= 0:
                self._problem("non_positive_size", f"{where}: bbox {bbox} has non-positive width/height")
                continue
            _, ih, iw = images[iid]
            if x < -tol or y < -tol or x + w > iw + tol or y + h > ih + tol:
                self._problem("box_outside", f"{where}: bbox {bbox} extends beyond the {iw}x{ih} image "
                                             f"by more than {tol:g} px")
                continue
            x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, float(iw)), min(y + h, float(ih))
            if x2 <= x1 or y2 <= y1:
                self._problem("box_outside", f"{where}: bbox {bbox} has no area inside the {iw}x{ih} image")
                continue
            boxes[iid].append((self.category_to_label[cid], x1, y1, x2, y2))
        return boxes, crowd

    def _finalise(self, images, boxes_per_image, keep_empty, check_files):
        self.image_ids, self.file_names, self.shapes, self.labels = [], [], [], []
        for iid in sorted(images, key=_sort_key):
            file_name, h, w = images[iid]
            if check_files and not os.path.isfile(os.path.join(self.images_dir, file_name)):
                self._problem("missing_image_file", f"image id={iid}: file '{file_name}' not found in {self.images_dir}")
                continue
            rows = boxes_per_image[iid]
            if not rows and not keep_empty:
                continue
            self.image_ids.append(iid)
            self.file_names.append(file_name)
            self.shapes.append((h, w))
            self.labels.append(np.asarray(rows, dtype=np.float32).reshape(-1, 5))
        if not self.image_ids:
            raise CocoFormatError(f"{self.ann_file}: no usable images (skipped: {dict(self.skip_counts)})")

    # ----------------------------------------------------------------------------- access
    def __len__(self):
        return len(self.image_ids)

    def image_path(self, index):
        return os.path.join(self.images_dir, self.file_names[index])

    def load_image(self, index):
        """BGR uint8 (h, w, 3) image, or None (counted warning) when it cannot be decoded or its size
        differs from the JSON record."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self.image_path(index)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            img = _read_with_pil(path)
        problem = None
        if img is None:
            problem = f"cannot decode image file {path}"
        elif img.shape[:2] != self.shapes[index]:
            problem = (f"image file {path} is {img.shape[1]}x{img.shape[0]} but the JSON says "
                       f"{self.shapes[index][1]}x{self.shapes[index][0]}")
        if problem:
            self._unreadable(index, problem)
            return None
        if self._cache is not None:
            self._cache[index] = img
        return img

    def _unreadable(self, index, problem):
        with self._lock:
            if index in self._bad_images:
                return
            self._bad_images.add(index)
            self.skip_counts["unreadable_image"] += 1
            message = f"{self.ann_file}: image id={self.image_ids[index]}: {problem}; skipped"
            self.skip_messages.append(message)
        LOGGER.warning("%s (%d unreadable so far)", message, self.skip_counts["unreadable_image"])

    @property
    def unreadable_count(self):
        return self.skip_counts["unreadable_image"]


def _read_with_pil(path):
    try:
        with Image.open(path) as im:
            return cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)
    except Exception:  # any decoder failure means "unreadable"; the caller counts it
        return None


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _sort_key(iid):
    return (0, iid, "") if isinstance(iid, int) else (1, 0, str(iid))
