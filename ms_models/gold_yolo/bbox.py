"""Box conversions and IoU variants used by the Gold-YOLO assigner and losses (MindSpore).

Boxes are xyxy unless stated; distances are (left, top, right, bottom) from an anchor point. All
functions work on any leading shape and keep the units of their inputs (pixels or strides).
The arithmetic order follows the official YOLOv6 code (`yolov6/utils/general.py`, `figure_iou.py`);
`pt_reference/gold_yolo/bbox.py` is the PyTorch twin. GRAPH-mode safe.
"""
import math

from mindspore import ops

IOU_TYPES = ("giou", "diou", "ciou", "siou")


def dist2bbox(distance, anchor_points):
    """(..., 4) ltrb distances around (..., 2) points -> (..., 4) xyxy boxes."""
    x1y1 = anchor_points - distance[..., :2]
    x2y2 = anchor_points + distance[..., 2:]
    return ops.concat((x1y1, x2y2), -1)


def bbox2dist(anchor_points, bbox, reg_max):
    """(..., 4) xyxy boxes -> ltrb distances from (..., 2) points, clipped to [0, reg_max - 0.01]."""
    lt = anchor_points - bbox[..., :2]
    rb = bbox[..., 2:] - anchor_points
    return ops.clamp(ops.concat((lt, rb), -1), 0.0, reg_max - 0.01)


def xywh2xyxy(boxes):
    """(..., 4) centre/size boxes -> xyxy, computed as the official in-place version does
    (x2 = x1 + w, not cx + w/2)."""
    x1 = boxes[..., 0] - boxes[..., 2] * 0.5
    y1 = boxes[..., 1] - boxes[..., 3] * 0.5
    return ops.stack((x1, y1, x1 + boxes[..., 2], y1 + boxes[..., 3]), -1)


def pairwise_iou(gt_bboxes, pd_bboxes, eps=1e-9):
    """IoU of every gt with every prediction: (B, M, 4) x (B, A, 4) -> (B, M, A)."""
    g = gt_bboxes.expand_dims(2)
    p = pd_bboxes.expand_dims(1)
    lt = ops.maximum(g[..., :2], p[..., :2])
    rb = ops.minimum(g[..., 2:], p[..., 2:])
    wh = ops.clamp(rb - lt, min=0.0)
    overlap = wh[..., 0] * wh[..., 1]
    g_wh = ops.clamp(g[..., 2:] - g[..., :2], min=0.0)
    p_wh = ops.clamp(p[..., 2:] - p[..., :2], min=0.0)
    area_g = g_wh[..., 0] * g_wh[..., 1]
    area_p = p_wh[..., 0] * p_wh[..., 1]
    return overlap / (area_g + area_p - overlap + eps)


def iou_loss(pred, target, iou_type="giou", eps=1e-10):
    """1 - {GIoU, DIoU, CIoU, SIoU} of matching xyxy boxes: (..., 4) x (..., 4) -> (...)."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"bbox.iou_loss: iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    b1x1, b1y1, b1x2, b1y2 = pred[..., 0], pred[..., 1], pred[..., 2], pred[..., 3]
    b2x1, b2y1, b2x2, b2y2 = target[..., 0], target[..., 1], target[..., 2], target[..., 3]
    inter = ops.clamp(ops.minimum(b1x2, b2x2) - ops.maximum(b1x1, b2x1), min=0.0) * \
        ops.clamp(ops.minimum(b1y2, b2y2) - ops.maximum(b1y1, b2y1), min=0.0)
    w1, h1 = b1x2 - b1x1, b1y2 - b1y1 + eps
    w2, h2 = b2x2 - b2x1, b2y2 - b2y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = ops.maximum(b1x2, b2x2) - ops.minimum(b1x1, b2x1)
    ch = ops.maximum(b1y2, b2y2) - ops.minimum(b1y1, b2y1)
    if iou_type == "giou":
        c_area = cw * ch + eps
        iou = iou - (c_area - union) / c_area
    elif iou_type in ("diou", "ciou"):
        c2 = cw * cw + ch * ch + eps
        dx = b2x1 + b2x2 - b1x1 - b1x2
        dy = b2y1 + b2y2 - b1y1 - b1y2
        rho2 = (dx * dx + dy * dy) / 4
        if iou_type == "diou":
            iou = iou - rho2 / c2
        else:
            da = ops.atan(w2 / h2) - ops.atan(w1 / h1)
            v = (4 / math.pi ** 2) * (da * da)
            alpha = ops.stop_gradient(v / (v - iou + (1 + eps)))
            iou = iou - (rho2 / c2 + v * alpha)
    else:  # siou, arXiv 2205.12740
        s_cw = (b2x1 + b2x2 - b1x1 - b1x2) * 0.5 + eps
        s_ch = (b2y1 + b2y2 - b1y1 - b1y2) * 0.5 + eps
        sigma = ops.sqrt(s_cw * s_cw + s_ch * s_ch)
        sin_1 = ops.abs(s_cw) / sigma
        sin_2 = ops.abs(s_ch) / sigma
        sin_alpha = ops.where(sin_1 > math.sqrt(2) / 2, sin_2, sin_1)
        angle_cost = ops.cos(ops.asin(sin_alpha) * 2 - math.pi / 2)
        rho_x = (s_cw / cw) * (s_cw / cw)
        rho_y = (s_ch / ch) * (s_ch / ch)
        gamma = angle_cost - 2
        distance_cost = 2 - ops.exp(gamma * rho_x) - ops.exp(gamma * rho_y)
        shape_w = 1 - ops.exp(-ops.abs(w1 - w2) / ops.maximum(w1, w2))
        shape_h = 1 - ops.exp(-ops.abs(h1 - h2) / ops.maximum(h1, h2))
        sw2, sh2 = shape_w * shape_w, shape_h * shape_h
        iou = iou - 0.5 * (distance_cost + sw2 * sw2 + sh2 * sh2)
    return 1.0 - iou
