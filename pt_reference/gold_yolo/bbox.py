"""Box conversions and IoU variants used by the Gold-YOLO assigner and losses (PyTorch twin).

Boxes are xyxy unless stated; distances are (left, top, right, bottom) from an anchor point. All
functions work on any leading shape and keep the units of their inputs (pixels or strides).
The arithmetic order follows the official YOLOv6 code (`yolov6/utils/general.py`, `figure_iou.py`)
so values agree to the last bits; `ms_models/gold_yolo/bbox.py` is the MindSpore twin.
"""
import math

import torch

IOU_TYPES = ("giou", "diou", "ciou", "siou")


def dist2bbox(distance, anchor_points):
    """(..., 4) ltrb distances around (..., 2) points -> (..., 4) xyxy boxes."""
    x1y1 = anchor_points - distance[..., :2]
    x2y2 = anchor_points + distance[..., 2:]
    return torch.cat([x1y1, x2y2], -1)


def bbox2dist(anchor_points, bbox, reg_max):
    """(..., 4) xyxy boxes -> ltrb distances from (..., 2) points, clipped to [0, reg_max - 0.01]."""
    lt = anchor_points - bbox[..., :2]
    rb = bbox[..., 2:] - anchor_points
    return torch.cat([lt, rb], -1).clamp(0, reg_max - 0.01)


def xywh2xyxy(boxes):
    """(..., 4) centre/size boxes -> xyxy, computed as the official in-place version does
    (x2 = x1 + w, not cx + w/2)."""
    x1 = boxes[..., 0] - boxes[..., 2] * 0.5
    y1 = boxes[..., 1] - boxes[..., 3] * 0.5
    return torch.stack([x1, y1, x1 + boxes[..., 2], y1 + boxes[..., 3]], -1)


def pairwise_iou(gt_bboxes, pd_bboxes, eps=1e-9):
    """IoU of every gt with every prediction: (B, M, 4) x (B, A, 4) -> (B, M, A)."""
    g = gt_bboxes.unsqueeze(2)
    p = pd_bboxes.unsqueeze(1)
    lt = torch.maximum(g[..., :2], p[..., :2])
    rb = torch.minimum(g[..., 2:], p[..., 2:])
    overlap = (rb - lt).clamp(min=0).prod(-1)
    area_g = (g[..., 2:] - g[..., :2]).clamp(min=0).prod(-1)
    area_p = (p[..., 2:] - p[..., :2]).clamp(min=0).prod(-1)
    return overlap / (area_g + area_p - overlap + eps)


def iou_loss(pred, target, iou_type="giou", eps=1e-10):
    """1 - {GIoU, DIoU, CIoU, SIoU} of matching xyxy boxes: (..., 4) x (..., 4) -> (...)."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"bbox.iou_loss: iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    b1x1, b1y1, b1x2, b1y2 = pred.unbind(-1)
    b2x1, b2y1, b2x2, b2y2 = target.unbind(-1)
    inter = (torch.minimum(b1x2, b2x2) - torch.maximum(b1x1, b2x1)).clamp(min=0) * \
        (torch.minimum(b1y2, b2y2) - torch.maximum(b1y1, b2y1)).clamp(min=0)
    w1, h1 = b1x2 - b1x1, b1y2 - b1y1 + eps
    w2, h2 = b2x2 - b2x1, b2y2 - b2y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.maximum(b1x2, b2x2) - torch.minimum(b1x1, b2x1)
    ch = torch.maximum(b1y2, b2y2) - torch.minimum(b1y1, b2y1)
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
            da = torch.atan(w2 / h2) - torch.atan(w1 / h1)
            v = (4 / math.pi ** 2) * (da * da)
            with torch.no_grad():
                alpha = v / (v - iou + (1 + eps))
            iou = iou - (rho2 / c2 + v * alpha)
    else:  # siou, arXiv 2205.12740
        s_cw = (b2x1 + b2x2 - b1x1 - b1x2) * 0.5 + eps
        s_ch = (b2y1 + b2y2 - b1y1 - b1y2) * 0.5 + eps
        sigma = torch.sqrt(s_cw * s_cw + s_ch * s_ch)
        sin_1 = torch.abs(s_cw) / sigma
        sin_2 = torch.abs(s_ch) / sigma
        sin_alpha = torch.where(sin_1 > math.sqrt(2) / 2, sin_2, sin_1)
        angle_cost = torch.cos(torch.arcsin(sin_alpha) * 2 - math.pi / 2)
        rho_x = (s_cw / cw) * (s_cw / cw)
        rho_y = (s_ch / ch) * (s_ch / ch)
        gamma = angle_cost - 2
        distance_cost = 2 - torch.exp(gamma * rho_x) - torch.exp(gamma * rho_y)
        shape_w = 1 - torch.exp(-torch.abs(w1 - w2) / torch.maximum(w1, w2))
        shape_h = 1 - torch.exp(-torch.abs(h1 - h2) / torch.maximum(h1, h2))
        sw2, sh2 = shape_w * shape_w, shape_h * shape_h
        iou = iou - 0.5 * (distance_cost + sw2 * sw2 + sh2 * sh2)
    return 1.0 - iou
