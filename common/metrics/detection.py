"""Detection post-processing and COCO evaluation in numpy (official YOLOv6 NMS semantics).

``non_max_suppression`` reproduces ``yolov6/utils/nms.py`` with torchvision's greedy NMS made
deterministic: candidates are ordered by a stable descending sort of the score, so equal scores
keep their index order. IoU arithmetic is done in float32 in torchvision's order of operations.
"""
import contextlib
import io
import json
import os

import numpy as np


def xywh2xyxy(x):
    """(n, 4) centre-x, centre-y, width, height -> x1, y1, x2, y2."""
    y = np.array(x, copy=True)
    y[:, 0] = x[:, 0] - x[:, 2] / 2
    y[:, 1] = x[:, 1] - x[:, 3] / 2
    y[:, 2] = x[:, 0] + x[:, 2] / 2
    y[:, 3] = x[:, 1] + x[:, 3] / 2
    return y


def stable_argsort_desc(scores):
    """Indices sorting ``scores`` from high to low; ties keep increasing index order."""
    return np.argsort(-np.asarray(scores), kind="stable")


def nms(boxes, scores, iou_thres, max_keep=None):
    """Greedy NMS (torchvision semantics: suppress IoU > ``iou_thres``).

    Args:
        boxes: (n, 4) xyxy; scores: (n,).
        max_keep: stop after this many kept boxes (the first ``max_keep`` of the full result).
    Returns:
        int64 indices of kept boxes, by decreasing score.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = stable_argsort_desc(scores)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > np.float32(iou_thres))]
    return np.asarray(keep, dtype=np.int64)


def non_max_suppression(prediction, conf_thres=0.03, iou_thres=0.65, multi_label=True, max_det=300,
                        classes=None, agnostic=False, max_wh=4096, max_nms=30000):
    """Per-image NMS of raw head outputs.

    Args:
        prediction: (B, N, 5 + nc) or (N, 5 + nc) rows [cx, cy, w, h, objectness, class scores...].
        multi_label: one detection per (box, class) with score > ``conf_thres`` (when nc > 1);
            otherwise only the best class per box.
        classes: optional list of class indices to keep.
        agnostic: NMS across classes (no class offset).
        max_wh: class offset added to boxes so that classes never overlap.
        max_nms: at most this many highest-scoring candidates enter NMS.
    Returns:
        list (one per image) of float32 (k, 6) arrays [x1, y1, x2, y2, score, class], k <= max_det.
    """
    if not (0 <= conf_thres <= 1 and 0 <= iou_thres <= 1):
        raise ValueError(f"conf_thres and iou_thres must be in [0, 1], got {conf_thres}, {iou_thres}")
    pred = np.asarray(prediction)
    if pred.ndim == 2:
        pred = pred[None]
    pred = pred.astype(np.float32, copy=False)
    nc = pred.shape[2] - 5
    multi_label = multi_label and nc > 1
    output = []
    for x in pred:
        x = x[x[:, 4] > conf_thres].copy()
        if not len(x):
            output.append(np.zeros((0, 6), np.float32))
            continue
        x[:, 5:] *= x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        if multi_label:
            box_idx, class_idx = np.nonzero(x[:, 5:] > conf_thres)
            det = np.concatenate((box[box_idx], x[box_idx, class_idx + 5, None],
                                  class_idx[:, None].astype(np.float32)), 1)
        else:
            class_idx = x[:, 5:].argmax(1)
            conf = x[np.arange(len(x)), class_idx + 5]
            det = np.concatenate((box, conf[:, None], class_idx[:, None].astype(np.float32)), 1)[conf > conf_thres]
        if classes is not None:
            det = det[np.isin(det[:, 5], np.asarray(classes, dtype=np.float32))]
        if not len(det):
            output.append(np.zeros((0, 6), np.float32))
            continue
        if len(det) > max_nms:
            det = det[stable_argsort_desc(det[:, 4])[:max_nms]]
        offset = det[:, 5:6] * (0 if agnostic else max_wh)
        keep = nms(det[:, :4] + offset, det[:, 4], iou_thres, max_keep=max_det)
        output.append(det[keep].astype(np.float32))
    return output


def detections_to_coco(detections, infos, category_ids):
    """COCO results records for a batch.

    Args:
        detections: list of (k, 6) [x1, y1, x2, y2, score, class] in network-input pixels.
        infos: matching ``EvalImageInfo`` (``to_original`` maps boxes back; ``image_id``).
        category_ids: COCO category id of each contiguous class index.
    Returns:
        list of {"image_id", "category_id", "bbox": [x, y, w, h] (3 decimals), "score" (5 decimals)}.
    """
    records = []
    for det, info in zip(detections, infos):
        if not len(det):
            continue
        boxes = info.to_original(det[:, :4])
        for (x1, y1, x2, y2), score, cls in zip(boxes.tolist(), det[:, 4].tolist(), det[:, 5].tolist()):
            records.append({"image_id": info.image_id, "category_id": int(category_ids[int(cls)]),
                            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                            "score": round(score, 5)})
    return records


_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def coco_evaluate(ann_file, results, out_dir=None, image_ids=None, verbose=True):
    """pycocotools ``COCOeval`` (bbox) of ``results`` against the ground truth ``ann_file``.

    Args:
        results: list of COCO result records, or the path of a results JSON.
        out_dir: when given, writes ``predictions.json``, ``coco_eval.json`` and ``coco_eval.md``.
        image_ids: evaluate only these images (default: every image of the ground truth).
        verbose: print the AP table.
    Returns:
        dict with the 12 COCO summary numbers (``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``,
        ``AR1``, ``AR10``, ``AR100``, ``ARs``, ``ARm``, ``ARl``; fractions in [0, 1], -1 when
        undefined) and ``per_class``: {name: {"AP": .., "AP50": ..}}.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(results, (str, os.PathLike)):
        with open(results) as f:
            results = json.load(f)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    cat_ids = sorted(gt.getCatIds())
    names = [gt.cats[c]["name"] for c in cat_ids]
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        _write_json(os.path.join(out_dir, "predictions.json"), results)
    if not results:
        metrics = {k: 0.0 for k in _STAT_NAMES}
        metrics["per_class"] = {n: {"AP": 0.0, "AP50": 0.0} for n in names}
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes([dict(r) for r in results])  # loadRes edits records
            ev = COCOeval(gt, dt, "bbox")
            if image_ids is not None:
                ev.params.imgIds = list(image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        metrics = {k: float(v) for k, v in zip(_STAT_NAMES, ev.stats)}
        metrics["per_class"] = _per_class_ap(ev.eval["precision"], names)
    table = format_ap_table(metrics)
    if verbose:
        print(table)
    if out_dir:
        _write_json(os.path.join(out_dir, "coco_eval.json"), metrics)
        with open(os.path.join(out_dir, "coco_eval.md"), "w") as f:
            f.write(table + "\n")
    return metrics


def _per_class_ap(precision, names):
    """precision: (iou thresholds, recall points, classes, area ranges, max dets); area 'all',
    maxDets 100; entries of -1 (no ground truth) are ignored."""
    out = {}
    for k, name in enumerate(names):
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        out[name] = {"AP": float(p[p > -1].mean()) if (p > -1).any() else -1.0,
                     "AP50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else -1.0}
    return out


def format_ap_table(metrics):
    """Markdown table of the COCO summary and the per-class AP (percent)."""
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {100 * metrics[k]:.2f} |" for k in _STAT_NAMES]
    lines += ["", "| class | AP | AP50 |", "|---|---:|---:|"]
    lines += [f"| {n} | {100 * v['AP']:.2f} | {100 * v['AP50']:.2f} |" for n, v in metrics["per_class"].items()]
    return "\n".join(lines)


def _write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)
