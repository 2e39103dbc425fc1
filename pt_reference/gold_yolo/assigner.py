"""Task-aligned label assignment (TAL) of Gold-YOLO (PyTorch twin).

The algorithm of `yolov6/assigners/tal_assigner.py` written with masks only (static shapes), the
same way as the MindSpore twin. Ties are broken by the lowest index everywhere (top-k, arg-max);
the official code relies on torch.topk / argmax order there, which is the only difference.
"""
import torch

from .bbox import pairwise_iou


def argmax_first(x, dim):
    """Index of the first maximum along `dim` (lowest index wins ties); int64, `dim` removed."""
    n = x.shape[dim]
    shape = [1] * x.dim()
    shape[dim] = n
    idx = torch.arange(n, dtype=torch.int64).reshape(shape)
    is_max = x == x.amax(dim, keepdim=True)
    return torch.where(is_max, idx, torch.full_like(idx, n)).amin(dim)


def topk_mask(metrics, k):
    """1.0 at the k largest entries along the last axis (ties: lowest indices), else 0.0."""
    kth = torch.topk(metrics, k, dim=-1)[0][..., k - 1:]
    above = metrics > kth
    equal = metrics == kth
    need = k - above.sum(-1, keepdim=True)
    rank = torch.cumsum(equal.to(torch.int32), -1)
    return (above | (equal & (rank <= need))).to(metrics.dtype)


def candidates_in_gts(anchor_points, gt_bboxes, eps=1e-9):
    """1.0 where an anchor point (A, 2) lies strictly inside a gt box (B, M, 4) -> (B, M, A)."""
    p = anchor_points[None, None]
    g = gt_bboxes.unsqueeze(2)
    deltas = torch.cat([p - g[..., :2], g[..., 2:] - p], -1)
    return (deltas.amin(-1) > eps).to(gt_bboxes.dtype)


class TaskAlignedAssigner:
    """TAL: candidates inside gts, metric = score^alpha * IoU^beta, top-k per gt, one gt per anchor
    (highest IoU), target scores normalised per gt by its max IoU / max metric."""

    def __init__(self, topk=13, num_classes=80, alpha=1.0, beta=6.0, eps=1e-9):
        self.topk = topk
        self.num_classes = num_classes
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def __call__(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        """pd_scores (B, A, nc) probabilities, pd_bboxes (B, A, 4) xyxy px, anc_points (A, 2) px,
        gt_labels (B, M, 1), gt_bboxes (B, M, 4) xyxy px, mask_gt (B, M, 1) 1.0 for real rows.

        Returns target_labels (B, A) int64, target_bboxes (B, A, 4), target_scores (B, A, nc),
        fg_mask (B, A) bool, target_gt_idx (B, A) int64 (0 for background anchors).
        """
        bs, n_max, _ = gt_bboxes.shape
        n_anchors = pd_scores.shape[1]
        if n_anchors < self.topk:
            raise ValueError(f"TaskAlignedAssigner: topk={self.topk} exceeds the {n_anchors} anchors")
        if n_max == 0:
            return (torch.full((bs, n_anchors), self.num_classes, dtype=torch.int64),
                    torch.zeros_like(pd_bboxes), torch.zeros_like(pd_scores),
                    torch.zeros((bs, n_anchors), dtype=torch.bool),
                    torch.zeros((bs, n_anchors), dtype=torch.int64))
        labels = gt_labels.long().squeeze(-1).clamp(min=0)
        # score of each gt's class at every anchor: (B, M, A)
        bbox_scores = torch.gather(pd_scores.permute(0, 2, 1), 1,
                                   labels.unsqueeze(-1).expand(bs, n_max, n_anchors))
        overlaps = pairwise_iou(gt_bboxes, pd_bboxes)
        align_metric = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        in_gts = candidates_in_gts(anc_points, gt_bboxes)
        mask_pos = topk_mask(align_metric * in_gts, self.topk) * in_gts * mask_gt

        # an anchor claimed by several gts goes to the gt of highest IoU (over all gt rows)
        multi = mask_pos.sum(1, keepdim=True) > 1
        best = torch.nn.functional.one_hot(argmax_first(overlaps, 1), n_max).permute(0, 2, 1)
        mask_pos = torch.where(multi, best.to(mask_pos.dtype), mask_pos)
        fg_mask = mask_pos.sum(1) > 0
        target_gt_idx = argmax_first(mask_pos, 1)

        target_labels = torch.gather(labels, 1, target_gt_idx)
        target_bboxes = torch.gather(gt_bboxes, 1, target_gt_idx.unsqueeze(-1).expand(bs, n_anchors, 4))
        target_scores = torch.nn.functional.one_hot(target_labels, self.num_classes).to(pd_scores.dtype)
        target_scores = target_scores * fg_mask.unsqueeze(-1).to(pd_scores.dtype)

        align_metric = align_metric * mask_pos
        pos_align = align_metric.amax(-1, keepdim=True)
        pos_overlaps = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm = (align_metric * pos_overlaps / (pos_align + self.eps)).amax(1).unsqueeze(-1)
        return target_labels, target_bboxes, target_scores * norm, fg_mask, target_gt_idx
