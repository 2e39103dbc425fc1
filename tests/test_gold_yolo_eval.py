"""Gold-YOLO evaluation: NMS against a brute-force reference, COCOeval wrapper, box mapping back to
the original images, prediction plots."""
import json
import os
import time

import cv2
import numpy as np
import pytest

from common.data.coco import CocoDetection
from common.data.det_loader import DetectionEvalBatches
from common.data.synthetic_detection import synthetic_detection
from common.metrics.detection import coco_evaluate, detections_to_coco, non_max_suppression
from common.plots_detection import plot_detection_grid


# ----------------------------------------------------------------------------- NMS
def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def brute_force_nms(pred, conf, iou_thr, multi_label=True, max_det=300, agnostic=False, max_nms=30000):
    """Plain-Python reference: candidates in (box, class) order, stable sort by score, then keep a
    candidate unless a kept one of the same class (any class if agnostic) overlaps it > iou_thr."""
    out = []
    nc = pred.shape[2] - 5
    for rows in pred.tolist():
        cands = []
        for cx, cy, w, h, obj, *cls in rows:
            if obj <= conf:
                continue
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            scores = [c * obj for c in cls]
            if multi_label and nc > 1:
                cands += [(box, s, c) for c, s in enumerate(scores) if s > conf]
            else:
                c = max(range(nc), key=lambda k: (scores[k], -k))
                if scores[c] > conf:
                    cands.append((box, scores[c], c))
        cands = sorted(cands, key=lambda t: -t[1])[:max_nms]
        keep = []
        for box, s, c in cands:
            if all(not ((agnostic or kc == c) and _iou(box, kb) > iou_thr) for kb, _, kc in keep):
                keep.append((box, s, c))
        out.append(np.array([[*b, s, c] for b, s, c in keep[:max_det]], dtype=np.float64).reshape(-1, 6))
    return out


def _random_predictions(seed, batch=2, n=400, nc=4, yolov6_obj=False):
    """Boxes clustered around a few centres (IoUs spread around the threshold), float32 scores with
    planted exact ties."""
    rng = np.random.default_rng(seed)
    pred = np.zeros((batch, n, 5 + nc), np.float32)
    for b in range(batch):
        centres = rng.uniform(50, 590, (12, 2))
        k = rng.integers(0, 12, n)
        pred[b, :, :2] = centres[k] + rng.normal(0, 6, (n, 2))
        pred[b, :, 2:4] = rng.uniform(20, 80, (n, 2))
        pred[b, :, 4] = 1.0 if yolov6_obj else rng.uniform(0, 1, n)
        pred[b, :, 5:] = rng.uniform(0, 1, (n, nc)) ** 3
        pred[b, 10:20, 5:] = pred[b, 0:10, 5:]  # exact score ties: index order decides
    return pred


def _assert_same(ours, ref):
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref):
        assert o.shape == r.shape
        np.testing.assert_array_equal(o[:, 5], r[:, 5])  # same classes in the same order
        np.testing.assert_allclose(o[:, :5], r[:, :5], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("seed, kw", list(enumerate([
    dict(),
    dict(yolov6_obj=True),
    dict(multi_label=False),
    dict(agnostic=True),
    dict(max_det=15),
    dict(max_nms=60),
    dict(iou_thres=0.3, conf_thres=0.2),
])))
def test_nms_matches_brute_force(seed, kw):
    kw = dict(kw)
    pred = _random_predictions(seed=seed, yolov6_obj=kw.pop("yolov6_obj", False))
    conf, iou = kw.pop("conf_thres", 0.03), kw.pop("iou_thres", 0.65)
    ours = non_max_suppression(pred, conf_thres=conf, iou_thres=iou, **kw)
    ref = brute_force_nms(pred, conf, iou, **kw)
    _assert_same(ours, ref)
    assert all(len(r) > 5 for r in ref)  # the case is not trivial
    assert all(o.dtype == np.float32 for o in ours)


def test_nms_ties_broken_by_index_and_empty_inputs():
    # two identical boxes with identical scores: the first (lower index) is kept
    pred = np.zeros((1, 3, 7), np.float32)
    pred[0, :, :4] = [100, 100, 40, 40]
    pred[0, :, 4] = 1
    pred[0, :, 5] = [0.5, 0.5, 0.01]
    pred[0, 1, :2] = [100.5, 100]
    out = non_max_suppression(pred)[0]
    assert out.shape == (1, 6) and out[0, 0] == 80  # box 0 (x1 = 100 - 20), not box 1 (80.5)
    assert non_max_suppression(np.zeros((2, 5, 8), np.float32))[1].shape == (0, 6)
    single = non_max_suppression(pred[0])  # (N, 5 + nc) is one image
    assert len(single) == 1 and np.array_equal(single[0], out)
    with pytest.raises(ValueError, match="conf_thres"):
        non_max_suppression(pred, conf_thres=2)


def test_nms_head_sized_input_is_fast():
    rng = np.random.default_rng(0)
    pred = np.zeros((1, 8400, 85), np.float32)
    pred[0, :, :2] = rng.uniform(0, 640, (8400, 2))
    pred[0, :, 2:4] = rng.uniform(8, 200, (8400, 2))
    pred[0, :, 4] = 1
    pred[0, :, 5:] = rng.uniform(0, 0.1, (8400, 80))  # ~2e5 candidates above 0.03 -> capped at 30000
    t = time.perf_counter()
    out = non_max_suppression(pred)
    elapsed = time.perf_counter() - t
    print(f"NMS on (1, 8400, 85), {int((pred[0, :, 5:] > 0.03).sum())} candidates: {elapsed * 1000:.0f} ms")
    assert out[0].shape == (300, 6) and elapsed < 5.0
    assert (np.diff(out[0][:, 4]) <= 0).all()


# ----------------------------------------------------------------------------- COCOeval
def _gt_file(tmp_path):
    rng = np.random.default_rng(0)
    images, anns = [], []
    for iid in range(1, 6):
        images.append({"id": iid, "file_name": f"{iid}.jpg", "width": 320, "height": 240})
        for k in range(4):
            w, h = rng.uniform(12, 120, 2)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 240 - h)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": int(rng.choice([1, 5])),
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "a"}, {"id": 5, "name": "b"}]}))
    return str(path), anns


def test_coco_eval_perfect_and_jittered(tmp_path, capsys):
    gt, anns = _gt_file(tmp_path)
    rng = np.random.default_rng(1)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                "score": float(rng.uniform(0.5, 1))} for a in anns]
    m = coco_evaluate(gt, perfect, out_dir=str(tmp_path / "eval"))
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0) and m["AR100"] == pytest.approx(1.0)
    assert m["per_class"] == {"a": {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)},
                              "b": {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}}
    assert "| AP | 100.00 |" in capsys.readouterr().out
    for name in ("coco_eval.json", "coco_eval.md", "predictions.json"):
        assert os.path.isfile(tmp_path / "eval" / name)
    assert json.loads((tmp_path / "eval" / "coco_eval.json").read_text())["AP"] == pytest.approx(1.0)

    jittered = [dict(r, bbox=[v + float(rng.normal(0, 4)) for v in r["bbox"]]) for r in perfect]
    mj = coco_evaluate(gt, jittered, verbose=False)
    assert 0.05 < mj["AP"] < 0.9 and mj["AP50"] > mj["AP"]
    assert perfect[0]["bbox"] == anns[0]["bbox"]  # inputs not modified
    empty = coco_evaluate(gt, [], verbose=False)
    assert empty["AP"] == 0.0 and set(empty["per_class"]) == {"a", "b"}


@pytest.fixture(scope="module")
def synthetic_val(tmp_path_factory):
    paths = synthetic_detection(num_train=1, num_val=6, img_size=256, seed=5,
                                cache_root=str(tmp_path_factory.mktemp("synth")))
    return paths, CocoDetection(paths.val_images, paths.val_ann, on_error="raise")


@pytest.mark.parametrize("mode, load_size, img_size", [("rect", None, 320), ("square", None, 192),
                                                       ("repro640", 252, 256)])
def test_ground_truth_through_eval_path_scores_ap_1(synthetic_val, tmp_path, mode, load_size, img_size):
    """GT boxes placed in network-input pixels (forward formula), encoded as raw head outputs, run
    through NMS, mapped back and evaluated -> AP = 1 in every letterbox mode."""
    paths, ds = synthetic_val
    nc = len(ds.class_names)
    results = []
    for images, infos in DetectionEvalBatches(ds, img_size, 4, mode=mode, load_size=load_size, workers=0):
        preds = []
        for img, info in zip(images, infos):
            lab = ds.labels[info.index]
            gy, gx = info.gain
            boxes = lab[:, 1:] * [gx, gy, gx, gy] + [*info.pad, *info.pad]
            assert boxes[:, 2].max() <= img.shape[2] and boxes[:, 3].max() <= img.shape[1]
            raw = np.zeros((len(lab), 5 + nc), np.float32)
            raw[:, 0:2] = (boxes[:, :2] + boxes[:, 2:]) / 2
            raw[:, 2:4] = boxes[:, 2:] - boxes[:, :2]
            raw[:, 4] = 1
            raw[np.arange(len(lab)), 5 + lab[:, 0].astype(int)] = 0.9
            preds.append(raw)
        dets = [non_max_suppression(p[None])[0] for p in preds]
        assert [len(d) for d in dets] == [len(p) for p in preds]
        results += detections_to_coco(dets, infos, ds.category_ids)
    m = coco_evaluate(paths.val_ann, results, verbose=False)
    assert m["AP"] == pytest.approx(1.0)


def test_detections_to_coco_record_format(synthetic_val):
    _, ds = synthetic_val
    images, infos = next(iter(DetectionEvalBatches(ds, 256, 2, mode="repro640", load_size=252, workers=0)))
    det = np.array([[12.0, 22.0, 52.0, 72.0, 0.123456, 2]], np.float32)
    rec = detections_to_coco([det, np.zeros((0, 6))], infos, ds.category_ids)
    assert len(rec) == 1 and rec[0]["category_id"] == 3 and rec[0]["image_id"] == infos[0].image_id
    gy, gx = infos[0].gain
    px, py = infos[0].pad
    expected = [(12 - px) / gx, (22 - py) / gy, 40 / gx, 50 / gy]
    np.testing.assert_allclose(rec[0]["bbox"], expected, atol=1e-3)
    assert rec[0]["score"] == 0.12346


# ----------------------------------------------------------------------------- plots
def test_prediction_grid_png(tmp_path, synthetic_val):
    _, ds = synthetic_val
    images = [ds.load_image(i)[:, :, ::-1] for i in range(3)]
    preds = [np.concatenate([lab[:, 1:], np.full((len(lab), 1), 0.8), lab[:, :1]], 1) for lab in ds.labels[:3]]
    preds[0] = np.zeros((0, 6))
    path = plot_detection_grid(images, preds, ds.labels[:3], ds.class_names, str(tmp_path / "grid.png"))
    grid = cv2.imread(path)
    assert grid.shape == (2 * (320 + 22 + 4), 4 * (320 + 4), 3)
    tile = lambda r, c: grid[r * 346 + 24:(r + 1) * 346 - 2, c * 324 + 2:(c + 1) * 324 - 2]
    assert not np.array_equal(tile(0, 0), tile(0, 1))  # GT boxes drawn, no predictions
    assert (tile(1, 3) == 255).all()  # padding tile
