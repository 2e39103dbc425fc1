"""Task-aligned label assignment (TAL) of Gold-YOLO (MindSpore).

The algorithm of `yolov6/assigners/tal_assigner.py` written with masks only: static shapes, no
data-dependent indexing, traceable by ms.jit / GRAPH mode. Ties are broken by the lowest index
everywhere (top-k, arg-max) because ops.topk tie order is not defined (it differs between
PyNative and GRAPH); the official code relies on torch.topk / argmax order there, which is the
only difference. Twin of `pt_reference/gold_yolo/assigner.py`.
"""
import mindspore as ms
from mindspore import nn, ops

from .bbox import pairwise_iou


def argmax_first(x, axis):
    """Index of the first maximum along `axis` (lowest index wins ties); int32, `axis` removed."""
    n = x.shape[axis]
    shape = [1] * x.ndim
    shape[axis] = n
    idx = ops.arange(0, n, 1, dtype=ms.int32).reshape(tuple(shape))
    is_max = x == x.max(axis=axis, keepdims=True)
    return ops.where(is_max, idx, ops.full_like(idx, n)).min(axis=axis)


def topk_mask(metrics, k):
    """1.0 at the k largest entries along the last axis (ties: lowest indices), else 0.0."""
    kth = ops.topk(metrics, k)[0][..., k - 1:]
    above = metrics > kth
    equal = metrics == kth
    need = k - above.astype(ms.int32).sum(-1, keepdims=True)
    rank = ops.cumsum(equal.astype(ms.int32), -1)
    return ops.logical_or(above, ops.logical_and(equal, rank <= need)).astype(metrics.dtype)


def candidates_in_gts(anchor_points, gt_bboxes, eps=1e-9):
    """1.0 where an anchor point (A, 2) lies strictly inside a gt box (B, M, 4) -> (B, M, A)."""
    p = anchor_points.reshape(1, 1, -1, 2)
    g = gt_bboxes.expand_dims(2)
    deltas = ops.concat((p - g[..., :2], g[..., 2:] - p), -1)
    return (deltas.min(axis=-1) > eps).astype(gt_bboxes.dtype)


class TaskAlignedAssigner(nn.Cell):
    """TAL: candidates inside gts, metric = score^alpha * IoU^beta, top-k per gt, one gt per anchor
    (highest IoU), target scores normalised per gt by its max IoU / max metric."""

    def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9):
        super().__init__()
        self.topk = topk
        self.num_classes = num_classes
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    def construct(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        """pd_scores (B, A, nc) probabilities, pd_bboxes (B, A, 4) xyxy px, anc_points (A, 2) px,
        gt_labels (B, M, 1), gt_bboxes (B, M, 4) xyxy px, mask_gt (B, M, 1) 1.0 for real rows.

        Returns target_labels (B, A) int32, target_bboxes (B, A, 4), target_scores (B, A, nc),
        fg_mask (B, A) bool, target_gt_idx (B, A) int32 (0 for background anchors).
        All inputs are treated as constants (no gradient).
        """
        pd_scores = ops.stop_gradient(pd_scores)
        pd_bboxes = ops.stop_gradient(pd_bboxes)
        gt_bboxes = ops.stop_gradient(gt_bboxes)
        bs, n_max = gt_bboxes.shape[0], gt_bboxes.shape[1]
        n_anchors = pd_scores.shape[1]
        if n_anchors < self.topk:
            raise ValueError(f"TaskAlignedAssigner: topk={self.topk} exceeds the {n_anchors} anchors")
        if n_max == 0:
            return (ops.full((bs, n_anchors), self.num_classes, dtype=ms.int32),
                    ops.zeros_like(pd_bboxes), ops.zeros_like(pd_scores),
                    ops.zeros((bs, n_anchors), ms.bool_), ops.zeros((bs, n_anchors), ms.int32))
        labels = ops.clamp(gt_labels.astype(ms.int32).squeeze(-1), min=0)
        # score of each gt's class at every anchor: (B, M, A)
        bbox_scores = ops.gather_elements(pd_scores.transpose(0, 2, 1), 1,
                                          ops.broadcast_to(labels.expand_dims(-1), (bs, n_max, n_anchors)))
        overlaps = pairwise_iou(gt_bboxes, pd_bboxes)
        align_metric = ops.pow(bbox_scores, self.alpha) * ops.pow(overlaps, self.beta)
        in_gts = candidates_in_gts(anc_points, gt_bboxes)
        mask_pos = topk_mask(align_metric * in_gts, self.topk) * in_gts * mask_gt

        # an anchor claimed by several gts goes to the gt of highest IoU (over all gt rows)
        multi = mask_pos.sum(1, keepdims=True) > 1
        best = ops.one_hot(argmax_first(overlaps, 1), n_max, ops.ones((), mask_pos.dtype),
                           ops.zeros((), mask_pos.dtype)).transpose(0, 2, 1)
        mask_pos = ops.where(multi, best, mask_pos)
        fg_mask = mask_pos.sum(1) > 0
        target_gt_idx = argmax_first(mask_pos, 1)

        target_labels = ops.gather_elements(labels, 1, target_gt_idx)
        target_bboxes = ops.gather_elements(
            gt_bboxes, 1, ops.broadcast_to(target_gt_idx.expand_dims(-1), (bs, n_anchors, 4)))
        target_scores = ops.one_hot(target_labels, self.num_classes, ops.ones((), pd_scores.dtype),
                                    ops.zeros((), pd_scores.dtype))
        target_scores = target_scores * fg_mask.expand_dims(-1).astype(pd_scores.dtype)

        align_metric = align_metric * mask_pos
        pos_align = align_metric.max(axis=-1, keepdims=True)
        pos_overlaps = (overlaps * mask_pos).max(axis=-1, keepdims=True)
        norm = (align_metric * pos_overlaps / (pos_align + self.eps)).max(axis=1).expand_dims(-1)
        return target_labels, target_bboxes, target_scores * norm, fg_mask, target_gt_idx
