"""Gold-YOLO data pipeline: COCO validation, letterbox geometry, augmentation/label consistency,
determinism of the batches, synthetic demo set."""
import json
import logging
import multiprocessing
import os

import cv2
import numpy as np
import pytest

from common.data import det_transforms as T
from common.data import synthetic_detection as synth
from common.data.coco import COCO80_TO_COCO91, CocoDetection, CocoFormatError
from common.data.det_loader import DetectionBatches, DetectionEvalBatches


# ----------------------------------------------------------------------------- COCO JSON
def _coco_files(tmp_path, edit=None):
    """Two 64x48 images, categories with ids 7 and 3 (non-contiguous, unsorted), 4 annotations."""
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(img_dir / name), np.full((48, 64, 3), 90, np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [4, 5, 10, 20], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [-1.5, 30, 20, 18.5], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 7, "bbox": [30, 10, 30, 30], "iscrowd": 0},
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [0, 0, 64, 48], "iscrowd": 1},
        ],
    }
    if edit:
        edit(data)
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    return str(img_dir), str(ann)


def test_coco_valid_file_contiguous_classes_clip_and_crowd(tmp_path):
    ds = CocoDetection(*_coco_files(tmp_path), on_error="raise")
    assert ds.category_ids == [3, 7] and ds.class_names == ["three", "seven"]
    assert ds.image_ids == [1, 2] and ds.shapes == [(48, 64), (48, 64)]
    # id 3 -> class 0, id 7 -> class 1; the box 1.5 px left of the border (tolerance 2) is clipped.
    np.testing.assert_allclose(ds.labels[0], [[0, 4, 5, 14, 25], [1, 0, 30, 18.5, 48.5 - 0.5]])
    np.testing.assert_allclose(ds.labels[1], [[1, 30, 10, 60, 40]])  # crowd box left out
    assert ds.crowd_count == 1 and not ds.skip_counts
    assert ds.load_image(0).shape == (48, 64, 3)


def test_coco80_mapping_is_sorted_ids(tmp_path):
    rng = np.random.default_rng(0)
    cats = [{"id": int(c), "name": f"c{c}"} for c in rng.permutation(COCO80_TO_COCO91)]
    ds = CocoDetection(*_coco_files(tmp_path, lambda d: d.update(categories=cats, annotations=[])), check_files=True)
    assert tuple(ds.category_ids) == COCO80_TO_COCO91
    assert ds.category_to_label[90] == 79 and ds.category_to_label[13] == 11


def _del(key, i=0, section="annotations"):
    return lambda d: d[section][i].pop(key)


def _set(key, value, i=0, section="annotations"):
    return lambda d: d[section][i].__setitem__(key, value)


MALFORMED = {
    # name: (edit, skip reason, text the message must contain)
    "missing_bbox": (_del("bbox"), "missing_field", "annotation id=10"),
    "box_far_outside": (_set("bbox", [50, 10, 30, 10]), "box_outside", "annotation id=10"),
    "zero_width": (_set("bbox", [5, 5, 0, 10]), "non_positive_size", "annotation id=10"),
    "negative_height": (_set("bbox", [5, 5, 4, -3]), "non_positive_size", "annotation id=10"),
    "unknown_category": (_set("category_id", 99), "unknown_category", "annotation id=10"),
    "unknown_image": (_set("image_id", 42), "unknown_image", "annotation id=10"),
    "bad_bbox_type": (_set("bbox", [1, 2, 3]), "bad_bbox", "annotation id=10"),
    "image_missing_width": (_del("width", 1, "images"), "missing_field", "image id=2"),
    "image_file_missing": (_set("file_name", "nope.jpg", 1, "images"), "missing_image_file", "image id=2"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_coco_malformed_records_raise_or_skip(tmp_path, case):
    edit, reason, where = MALFORMED[case]
    img_dir, ann = _coco_files(tmp_path, edit)
    with pytest.raises(CocoFormatError) as err:
        CocoDetection(img_dir, ann, on_error="raise")
    assert ann in str(err.value) and where in str(err.value)

    ds = CocoDetection(img_dir, ann, on_error="skip")
    assert ds.skip_counts[reason] == 1
    assert len(ds.skip_messages) == 1 and ann in ds.skip_messages[0] and where in ds.skip_messages[0]
    assert sum(len(lab) for lab in ds.labels) == 2  # of the 3 valid non-crowd boxes


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"images": [], "annotations": []}), "missing top-level list 'categories'"),
    (json.dumps([1, 2]), "top level must be an object"),
])
def test_coco_malformed_file_errors_name_the_file(tmp_path, text, message):
    ann = tmp_path / "bad.json"
    ann.write_text(text)
    with pytest.raises(CocoFormatError, match=message) as err:
        CocoDetection(str(tmp_path), str(ann))
    assert str(ann) in str(err.value)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        CocoDetection(str(tmp_path), str(tmp_path / "absent.json"))


def test_unreadable_image_is_skipped_and_counted_never_crashing(tmp_path, caplog):
    img_dir, ann = _coco_files(tmp_path)
    with open(os.path.join(img_dir, "b.png"), "wb") as f:
        f.write(b"this is not an image")
    ds = CocoDetection(img_dir, ann)
    loader = DetectionBatches(ds, 64, 2, max_boxes=8, seed=0, workers=0, drop_last=False)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            batches = list(loader)
    assert len(batches) == 1 and batches[0][0].shape == (2, 3, 64, 64)
    assert ds.unreadable_count == 1  # counted once, however often it was met
    assert sum("b.png" in r.getMessage() for r in caplog.records) == 1
    evals = list(DetectionEvalBatches(ds, 64, 2, mode="square", workers=0))
    assert [info.image_id for info in evals[0][1]] == [1]


# ----------------------------------------------------------------------------- letterbox geometry
class ArrayDataset:
    """Minimal dataset over in-memory BGR images (the interface the loaders use)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, [np.asarray(l, np.float32).reshape(-1, 5) for l in labels]
        self.shapes = [im.shape[:2] for im in images]
        self.image_ids = list(range(1, len(images) + 1))

    def __len__(self):
        return len(self.images)

    def load_image(self, i):
        return self.images[i]


def _square_image(h, w, box, colour=(0, 0, 255)):
    img = np.full((h, w, 3), 40, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = colour
    return img


def _colour_extent(img_chw, colour_rgb, tol=60):
    """Pixel extent [x1, y1, x2 + 1, y2 + 1] of pixels within ``tol`` of an RGB colour."""
    img = img_chw.transpose(1, 2, 0) * 255
    ys, xs = np.nonzero(np.abs(img - np.asarray(colour_rgb, np.float32)).max(2) < tol)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


@pytest.mark.parametrize("mode, load_size", [("rect", None), ("square", None), ("repro640", 636), ("repro640", 634)])
@pytest.mark.parametrize("hw, box", [((480, 640), (100, 50, 300, 200)), ((640, 427), (20, 400, 180, 630)),
                                     ((300, 451), (0, 0, 120, 90)), ((200, 1000), (700, 20, 990, 190))])
def test_letterbox_round_trip_via_pixels(mode, load_size, hw, box):
    """A solid red box drawn in the original image, found in the network input by colour and mapped
    back with the eval info, lands on the original box within 1 px."""
    img = _square_image(*hw, box)
    ds = ArrayDataset([img], [[[0, *box]]])
    images, infos = next(iter(DetectionEvalBatches(ds, 640, 1, mode=mode, load_size=load_size, workers=0)))
    found = _colour_extent(images[0], (255, 0, 0))
    gy, gx = infos[0].gain
    px, py = infos[0].pad
    forward = np.array(box) * [gx, gy, gx, gy] + [px, py, px, py]  # where the labels would go
    assert np.abs(forward - found).max() <= 1.0 + 1e-6, (forward, found)  # input pixels
    # geometric round trip in and back: within 1 original pixel
    assert np.abs(infos[0].to_original(forward[None])[0] - box).max() <= 1.0
    # the pixels found, mapped back: within 1 input pixel, i.e. 1 / gain original pixels
    back = infos[0].to_original(found[None])[0]
    assert np.abs(back - np.array(box)).max() <= 1.0 / min(gx, gy) + 1e-6, (back, box)


def test_repro640_numbers_from_the_spec():
    """--reproduce_640_eval: long side 636 (N/M/L) or 634 (S), exactly 640x640, integer pad, exact gains."""
    ds = ArrayDataset([np.zeros((480, 640, 3), np.uint8), np.zeros((640, 427, 3), np.uint8)], [[], []])
    images, infos = next(iter(DetectionEvalBatches(ds, 640, 2, mode="repro640", load_size=636, workers=0)))
    assert images.shape == (2, 3, 640, 640)
    # 640x480 -> 636x477 (int(480 * 636 / 640) = 477); pad 4 / 163 -> left 2, top round(81.4) = 81
    assert infos[0].pad == (2, 81) and all(isinstance(v, int) for v in infos[0].pad)
    assert infos[0].gain == (477 / 480, 636 / 640) and infos[0].scale_exact
    # 427x640 -> 424x636 (int(427 * 0.99375) = 424); pad 216 / 4 -> left 108, top 2
    assert infos[1].pad == (108, 2) and infos[1].gain == (636 / 640, 424 / 427)
    _, infos = next(iter(DetectionEvalBatches(ds, 640, 2, mode="repro640", load_size=634, workers=0)))
    # S: 640x480 -> 634x475; pad 6 / 165 -> left round(2.9) = 3, top round(82.4) = 82
    assert infos[0].pad == (3, 82) and infos[0].gain == (475 / 480, 634 / 640)
    with pytest.raises(ValueError, match="load_size"):
        DetectionEvalBatches(ds, 640, 2, mode="repro640")


def test_rect_batch_shape_default_mode():
    """Official rect eval: 640x480 alone -> batch shape ceil(0.75*20+0.5)*32 x ceil(20.5)*32 = 512x672,
    no upscale (ratio 1), float pad (16, 16)."""
    ds = ArrayDataset([np.zeros((480, 640, 3), np.uint8)], [[]])
    images, infos = next(iter(DetectionEvalBatches(ds, 640, 1, mode="rect", workers=0)))
    assert images.shape == (1, 3, 512, 672)
    assert infos[0].pad == (16.0, 16.0) and infos[0].gain == (1.0, 1.0) and not infos[0].scale_exact
    order, shapes = T.rect_batch_shapes([(480, 640), (640, 480), (500, 500), (300, 600)], 2, 640)
    assert order.tolist() == [3, 0, 2, 1]
    assert shapes.tolist() == [[512, 672], [672, 672]]


def test_eval_downscale_uses_inter_area():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (400, 800, 3), dtype=np.uint8)
    out, _, (h, w) = T.resize_long_side(img, 200, augment=False)
    assert (h, w) == (100, 200)
    np.testing.assert_array_equal(out, cv2.resize(img, (200, 100), interpolation=cv2.INTER_AREA))


# ----------------------------------------------------------------------------- augmentation vs labels
COLOURS_BGR = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0)]


def _colour_dataset():
    """Six images of varied size, each with one solid square of a unique colour (class = colour)."""
    rng = np.random.default_rng(3)
    images, labels = [], []
    for c, colour in enumerate(COLOURS_BGR):
        h, w = int(rng.integers(150, 300)), int(rng.integers(150, 300))
        side = int(rng.integers(40, 90))
        x1, y1 = int(rng.integers(20, w - side - 20)), int(rng.integers(20, h - side - 20))
        images.append(_square_image(h, w, (x1, y1, x1 + side, y1 + side), colour))
        labels.append([[c, x1, y1, x1 + side, y1 + side]])
    return ArrayDataset(images, labels)


def _check_boxes(img_chw, labels, tight_margin=None):
    """Every label box covers its colour's pixels (within 2.5 px). With ``tight_margin``, boxes at
    least that far from the image border must also be tight (each side within 2.5 px)."""
    h, w = img_chw.shape[1:]
    checked = 0
    for cls, *box in labels[labels[:, 3] > 0]:
        x1, y1, x2, y2 = (int(v) for v in box)
        win = np.zeros_like(img_chw)
        ys, xs = slice(max(y1 - 4, 0), y2 + 5), slice(max(x1 - 4, 0), x2 + 5)
        win[:, ys, xs] = img_chw[:, ys, xs]
        found = _colour_extent(win, COLOURS_BGR[int(cls)][::-1], tol=100)
        assert (found[:2] >= np.asarray(box[:2]) - 2.5).all() and (found[2:] <= np.asarray(box[2:]) + 2.5).all(), \
            (found, box)
        if tight_margin is not None and min(box[0], box[1], w - box[2], h - box[3]) > tight_margin:
            assert np.abs(found - np.asarray(box)).max() <= 2.5, (found, box)
            checked += 1
    return checked


def test_mosaic_then_affine_boxes_are_tight_on_the_drawn_squares():
    """Four small tiles (no tile is cropped at this size), rotated/sheared/scaled/translated."""
    ds = _colour_dataset()
    tiles, labels = [], []
    for i in range(4):
        img, _, (h, w) = T.resize_long_side(ds.images[i], 120, augment=True)
        lab = ds.labels[i].astype(np.float64).copy()
        lab[:, [1, 3]] *= w / ds.images[i].shape[1]
        lab[:, [2, 4]] *= h / ds.images[i].shape[0]
        tiles.append(img)
        labels.append(lab)
    tight = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        canvas, lab = T.mosaic_canvas(tiles, labels, 256, rng)
        assert canvas.shape == (512, 512, 3) and len(lab) == 4
        tight += _check_boxes(T.to_network_input(canvas), lab, tight_margin=0.5)  # translation only: exact
        img, lab = T.random_affine(canvas, lab, rng, degrees=10, translate=0.1, scale=0.5, shear=5,
                                   new_shape=(256, 256))
        tight += _check_boxes(T.to_network_input(img), lab.astype(np.float32), tight_margin=1.0)
    assert tight >= 60


@pytest.mark.parametrize("mosaic, aug", [
    (True, {"degrees": 10, "shear": 5, "scale": 0.5, "translate": 0.1, "fliplr": 0.5, "flipud": 0.5}),
    (True, {}),
    (False, {"degrees": 10, "shear": 5, "scale": 0.5, "fliplr": 0.5, "flipud": 0.5}),
])
def test_loader_boxes_cover_their_coloured_square(mosaic, aug):
    """Full training path. Mosaic tiles may crop a square (the official labels are then not cut at
    the tile edge), so there only coverage is checked; without mosaic boxes must also be tight."""
    aug = {**aug, "hsv_h": 0, "hsv_s": 0, "hsv_v": 0}  # keep colours exact
    loader = DetectionBatches(_colour_dataset(), 256, 6, max_boxes=8, aug_cfg=aug, seed=1, mosaic=mosaic, workers=0)
    boxes = tight = 0
    for epoch in range(3):
        loader.set_epoch(epoch)
        for images, labels in loader:
            for img, lab in zip(images, labels):
                tight += _check_boxes(img, lab, tight_margin=None if mosaic else 1.0)
                boxes += int((lab[:, 3] > 0).sum())
    assert boxes >= 15 and (mosaic or tight >= 10)


def test_mixup_and_flip_transforms():
    rng = np.random.default_rng(0)
    a, b = np.full((8, 8, 3), 200, np.uint8), np.full((8, 8, 3), 100, np.uint8)
    img, lab = T.mixup(a, np.ones((1, 5)), b, np.zeros((2, 5)), np.random.default_rng(5))
    r = np.random.default_rng(5).beta(32, 32)
    assert img[0, 0, 0] == int(200 * r + 100 * (1 - r)) and lab.shape == (3, 5)
    img = rng.integers(0, 255, (10, 20, 3), dtype=np.uint8)
    lab = np.array([[1, 2, 3, 7, 9]], np.float64)
    fimg, flab = T.flip_lr(img, lab)
    np.testing.assert_array_equal(fimg, img[:, ::-1])
    np.testing.assert_allclose(flab, [[1, 13, 3, 18, 9]])
    fimg, flab = T.flip_ud(img, lab)
    np.testing.assert_allclose(flab, [[1, 2, 1, 7, 7]])


# ----------------------------------------------------------------------------- determinism
def _batches(ds, **kw):
    return list(DetectionBatches(ds, 128, 3, max_boxes=6, **kw))


def _equal(a, b):
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def test_same_seed_same_batches_different_seed_or_epoch_differs():
    ds = _colour_dataset()
    aug = {"mixup": 0.5, "degrees": 5}
    ref = _batches(ds, aug_cfg=aug, seed=7, workers=0)
    assert _equal(ref, _batches(ds, aug_cfg=aug, seed=7, workers=2))  # threads do not change results
    assert _equal(ref, _batches(ds, aug_cfg=aug, seed=7, workers=1))
    assert not _equal(ref, _batches(ds, aug_cfg=aug, seed=8, workers=0))
    loader = DetectionBatches(ds, 128, 3, max_boxes=6, aug_cfg=aug, seed=7, workers=0)
    loader.set_epoch(1)
    assert not _equal(ref, list(loader))
    loader.set_epoch(0)
    assert _equal(ref, list(loader))
    loader.mosaic = False
    plain = list(loader)
    assert not _equal(ref, plain) and plain[0][0].shape == (3, 3, 128, 128)
    assert len(loader) == 2 and ref[0][1].dtype == np.float32 and ref[0][0].dtype == np.float32


def test_max_boxes_drop_is_counted(caplog):
    img = np.full((100, 100, 3), 40, np.uint8)
    labels = [[0, 5 + 9 * k, 10, 12 + 9 * k, 20] for k in range(10)]
    loader = DetectionBatches(ArrayDataset([img], [labels]), 100, 1, max_boxes=4, augment=False, workers=0)
    with caplog.at_level(logging.WARNING):
        (images, out), = list(loader)
    assert out.shape == (1, 4, 5) and loader.dropped_boxes == 6
    np.testing.assert_allclose(out[0], np.asarray(labels[:4], np.float32))  # no augmentation: exact
    assert any("6 boxes beyond max_boxes=4" in r.getMessage() for r in caplog.records)
    padded = DetectionBatches(ArrayDataset([img], [labels[:2]]), 100, 1, max_boxes=4, augment=False, workers=0)
    (_, out), = list(padded)
    assert (out[0, 2:] == 0).all() and (out[0, :2, 3] > 0).all()


def test_unknown_aug_key_is_an_error():
    with pytest.raises(KeyError, match="hsv_x"):
        DetectionBatches(_colour_dataset(), 64, 2, aug_cfg={"hsv_x": 0.1})


# ----------------------------------------------------------------------------- synthetic set
def _build(root):
    return synth.synthetic_detection(num_train=6, num_val=3, img_size=96, seed=3, cache_root=str(root))


def _read_all(paths):
    out = {}
    for split in ("train", "val"):
        folder = getattr(paths, f"{split}_images")
        out[split] = {f: cv2.imread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
        with open(getattr(paths, f"{split}_ann")) as f:
            out[split + "_json"] = json.load(f)
    return out


def test_synthetic_set_is_deterministic_reused_and_valid(tmp_path):
    a, b = _build(tmp_path / "a"), _build(tmp_path / "b")
    assert os.path.basename(a.root) == os.path.basename(b.root)  # same parameters -> same hash
    da, db = _read_all(a), _read_all(b)
    assert da["train_json"] == db["train_json"] and da["val_json"] == db["val_json"]
    assert all(np.array_equal(da["train"][k], db["train"][k]) for k in da["train"])
    other = synth.synthetic_detection(num_train=6, num_val=3, img_size=96, seed=4, cache_root=str(tmp_path / "a"))
    assert other.root != a.root
    mtime = os.path.getmtime(a.train_ann)
    assert _build(tmp_path / "a") == a and os.path.getmtime(a.train_ann) == mtime  # reused, not rebuilt
    ds = CocoDetection(a.train_images, a.train_ann, on_error="raise")
    assert len(ds) == 6 and ds.class_names == list(synth.CLASS_NAMES) and all(len(l) >= 1 for l in ds.labels)
    assert len(CocoDetection(a.val_images, a.val_ann, on_error="raise")) == 3


def _build_in_child(root, queue):
    queue.put(_build(root).root)


def test_synthetic_set_concurrent_builds_and_crash_leave_no_partial_set(tmp_path, monkeypatch):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(tmp_path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    roots = {queue.get(timeout=5), queue.get(timeout=5)}
    assert len(roots) == 1 and sorted(os.listdir(tmp_path)) == [os.path.basename(roots.pop())]
    assert _read_all(_build(tmp_path))["train_json"] == _read_all(_build(tmp_path / "ref"))["train_json"]

    def crash(root, split, *args):
        if split == "val":
            raise RuntimeError("disk full")
        return real(root, split, *args)

    real = synth._write_split
    monkeypatch.setattr(synth, "_write_split", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        _build(tmp_path / "crash")
    assert os.listdir(tmp_path / "crash") == []  # neither a final folder nor a temp folder left
