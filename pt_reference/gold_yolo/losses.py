"""Gold-YOLO training losses (PyTorch twin of `ms_models/gold_yolo/losses.py`).

Follows `yolov6/models/losses/{loss,loss_fuseab,loss_distill,loss_distill_ns}.py` with static
shapes: positives are selected by masks instead of masked_select, so the sums are the same.

Inputs (train-mode head outputs, see each class):
- `feats`: 3 maps (B, C, H_i, W_i) at strides 8/16/32, only their shapes are read.
- class scores (B, A, nc) already sigmoid; regression (B, A, 4*(reg_max+1)) raw DFL logits
  (or (B, A, 4) ltrb in stride units when use_dfl is False).
- `labels` (B, M, 5) float32 rows [class, x1, y1, x2, y2] in input pixels; padding rows are all
  zeros (a row is real when its coordinate sum is > 0, as the official mask_gt).
Each loss returns (total, components): components are detached scalars already multiplied by
their loss weight, `component_names` names them; total = world_size * sum(components).
"""
import math

import torch
import torch.nn.functional as F

from .anchors import generate_anchors
from .assigner import TaskAlignedAssigner
from .bbox import IOU_TYPES, bbox2dist, dist2bbox, iou_loss, xywh2xyxy

DEFAULT_LOSS_WEIGHT = {"class": 1.0, "iou": 2.5, "dfl": 0.5}
DEFAULT_DISTILL_WEIGHT = {"class": 1.0, "dfl": 1.0}
# Finite stand-ins for the boxes of background anchors, so that no NaN can leak into gradients
# through masked-out IoU terms.
_SAFE_PRED = (0.0, 0.0, 2.0, 2.0)
_SAFE_TARGET = (0.0, 0.0, 1.0, 1.0)


def bce_clamped(p, y):
    """Elementwise F.binary_cross_entropy(p, y) in torch's own form: logs clamped at -100,
    (y - 1) * log1p(-p) - y * log(p)."""
    log_q = torch.clamp(torch.log1p(-p), min=-100.0)
    log_p = torch.clamp(torch.log(p), min=-100.0)
    return (y - 1) * log_q - y * log_p


def varifocal_loss(pred_score, gt_score, label, alpha=0.75, gamma=2.0):
    """Summed VFL: BCE(pred, gt) weighted alpha*p^gamma on negatives and gt_score on positives.
    pred_score, gt_score, label: (B, A, nc); label is the 0/1 one-hot of the assigned class."""
    if gamma != 2.0:
        raise ValueError(f"losses.varifocal_loss: only gamma=2 is implemented, got {gamma}")
    weight = alpha * (pred_score * pred_score) * (1 - label) + gt_score * label
    return (bce_clamped(pred_score, gt_score) * weight).sum()


def df_loss(pred_dist, target):
    """Distribution focal loss: (..., 4, R) logits, (..., 4) targets in [0, R-1) -> (...) mean over
    the 4 sides of the two-bin interpolated cross-entropy."""
    left = target.long()
    right = left + 1
    w_left = right.to(target.dtype) - target
    w_right = 1 - w_left
    logp = F.log_softmax(pred_dist, -1)
    ce_left = -torch.gather(logp, -1, left.unsqueeze(-1)).squeeze(-1)
    ce_right = -torch.gather(logp, -1, right.unsqueeze(-1)).squeeze(-1)
    return (ce_left * w_left + ce_right * w_right).mean(-1)


# Series coefficients: (exp(e) - 1 - e) / e^2 = sum_j e^j / (j+2)!, |e| <= 1 (error < 1e-11);
# atanh(w) / w = sum_n w^(2n) / (2n+1), w <= 0.27 (error < 1e-13).
_EXP_TAIL = tuple(1.0 / math.factorial(j + 2) for j in range(12))
_ATANH = tuple(1.0 / (2 * n + 1) for n in range(10))


def _horner(x, coef):
    acc = x * 0 + coef[-1]
    for c in reversed(coef[:-1]):
        acc = acc * x + c
    return acc


def kl_softmax(student, teacher, temperature):
    """KL(softmax(teacher/T) || softmax(student/T)) over the last axis -> (...).

    The official sums p_t * (log p_t - log p_s). At T=20 both logs are ~1.6 while the KL is ~1e-4,
    so in fp32 that form keeps only ~2 correct digits (worse with MindSpore's CPU exp/log, which
    are off by up to 17 ulp). Where the centred logit differences are small (|e| <= 1, i.e.
    always at T=20) the same KL is computed without cancellation from
        e = d - E_s[d],  d = (teacher - student)/T,
        KL = E_s[e (exp(e) - 1)] / E_s[exp(e)] - log(E_s[exp(e)]),
    with exp(e) - 1 - e and log1p from series, accurate to ~1e-7 relative in both frameworks.
    Elsewhere the official form is used.
    """
    a = student / temperature
    d = (teacher - student) / temperature
    q = torch.exp(a - a.amax(-1, keepdim=True).detach())  # p_s up to a factor
    q_sum = q.sum(-1)
    e = d - (q * d).sum(-1, keepdim=True) / q_sum.unsqueeze(-1)
    small = e.abs().amax(-1) <= 1.0
    ec = e.clamp(-1.0, 1.0)
    h = ec * ec * _horner(ec, _EXP_TAIL)  # exp(e) - 1 - e
    v = (q * h).sum(-1)
    g = (q * ec * (h + ec)).sum(-1)  # sum q e (exp(e) - 1)
    z = v / q_sum
    w = z / (2 + z)
    series = g / (q_sum + v) - 2 * w * _horner(w * w, _ATANH)  # log1p(z) = 2 atanh(z / (2 + z))
    p_t = F.softmax(teacher / temperature, -1)
    direct = (p_t * (torch.log(p_t) - torch.log(F.softmax(a, -1)))).sum(-1)
    return torch.where(small, series, direct)


def distill_cls_loss(student_scores, teacher_scores, temperature):
    """Class distillation: KL over classes of the (sigmoid) scores at T, summed over anchors, x T^2."""
    return kl_softmax(student_scores, teacher_scores, temperature).sum() * temperature ** 2


def distill_weight_decay(epoch_frac):
    """Cosine decay of the distillation weight, 1 at epoch 0 -> 0.01 at epoch_frac = 1 (epoch / max_epoch).
    A Python number gives a float, a 0-d tensor a tensor."""
    if not torch.is_tensor(epoch_frac):
        return ((1 - math.cos(float(epoch_frac) * math.pi)) / 2) * (0.01 - 1) + 1
    return ((1 - torch.cos(epoch_frac * math.pi)) / 2) * (0.01 - 1) + 1


def split_labels(labels):
    """(B, M, 5) padded labels -> gt_labels (B, M, 1), gt_bboxes (B, M, 4), mask_gt (B, M, 1)."""
    gt_bboxes = labels[..., 1:]
    mask_gt = (gt_bboxes.sum(-1, keepdim=True) > 0).to(labels.dtype)
    return labels[..., :1], gt_bboxes, mask_gt


def _masked_where(mask, value, fill):
    return torch.where(mask.unsqueeze(-1), value, torch.tensor(fill, dtype=value.dtype))


class DetectionBranch:
    """Assignment plus VFL / IoU / DFL of one head branch ('af' anchor-free or 'ab' anchor-based).

    reg for 'af': (B, A, 4*(reg_max+1)) DFL logits, or (B, A, 4) ltrb when use_dfl is False;
    reg for 'ab': (B, 3*A_cells, 4) (dx, dy, w, h) in stride units, dx/dy relative to the cell
    anchor point (the fuse_ab head's anchor-based output).
    """

    def __init__(self, num_classes, reg_max, use_dfl, iou_type, strides, topk, mode="af"):
        if use_dfl and reg_max < 1:
            raise ValueError(f"losses: use_dfl=True needs reg_max >= 1, got reg_max={reg_max}")
        if iou_type not in IOU_TYPES:
            raise ValueError(f"losses: iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.use_dfl = use_dfl
        self.iou_type = iou_type
        self.strides = tuple(strides)
        self.mode = mode
        self.assigner = TaskAlignedAssigner(topk=topk, num_classes=num_classes, alpha=1.0, beta=6.0)
        self.proj = torch.linspace(0, reg_max, reg_max + 1)

    def decode(self, feats, reg):
        """-> pred_bboxes (B, A, 4) xyxy in stride units, anchor_points (A, 2) px, stride (A, 1)."""
        _, points, _, stride = generate_anchors(feats, self.strides, mode=self.mode)
        points_s = points / stride
        if self.mode == "ab":
            return xywh2xyxy(torch.cat([reg[..., :2] + points_s, reg[..., 2:]], -1)), points, stride
        if self.use_dfl:
            b, a, _ = reg.shape
            dist = F.softmax(reg.reshape(b, a, 4, self.reg_max + 1), -1).matmul(self.proj)
        else:
            dist = reg
        return dist2bbox(dist, points_s), points, stride

    def assign(self, scores, pred_bboxes, points, stride, labels):
        """Assigner outputs (see TaskAlignedAssigner) for the decoded predictions."""
        gt_labels, gt_bboxes, mask_gt = split_labels(labels)
        return self.assigner(scores.detach(), pred_bboxes.detach() * stride, points,
                             gt_labels, gt_bboxes, mask_gt)

    def __call__(self, feats, scores, reg, labels):
        """-> (loss_cls, loss_iou, loss_dfl) unweighted scalars, plus a dict of intermediates."""
        pred_bboxes, points, stride = self.decode(feats, reg)
        t_labels, t_bboxes, t_scores, fg, _ = self.assign(scores, pred_bboxes, points, stride, labels)
        t_bboxes = t_bboxes / stride
        fg_f = fg.to(scores.dtype)
        one_hot = F.one_hot(t_labels, self.num_classes).to(scores.dtype) * fg_f.unsqueeze(-1)
        score_sum = t_scores.sum()
        divisor = torch.where(score_sum > 0, score_sum, torch.ones_like(score_sum))
        loss_cls = varifocal_loss(scores, t_scores, one_hot) / divisor

        bbox_weight = t_scores.sum(-1) * fg_f
        loss_iou = self.weighted_iou(pred_bboxes, t_bboxes, fg, bbox_weight) / divisor
        points_s = points / stride
        if self.use_dfl:
            b, a, _ = reg.shape
            t_ltrb = bbox2dist(points_s, t_bboxes, self.reg_max)
            dfl = df_loss(reg.reshape(b, a, 4, self.reg_max + 1), t_ltrb)
            loss_dfl = (dfl * bbox_weight).sum() / divisor
        else:
            loss_dfl = torch.zeros((), dtype=scores.dtype)
        extras = {"fg": fg, "bbox_weight": bbox_weight, "divisor": divisor, "t_bboxes": t_bboxes,
                  "points_s": points_s}
        return loss_cls, loss_iou, loss_dfl, extras

    def weighted_iou(self, pred_bboxes, t_bboxes, fg, bbox_weight):
        """Sum over positives of (1 - IoU variant) * bbox_weight (stride-unit boxes)."""
        pred = _masked_where(fg, pred_bboxes, _SAFE_PRED)
        target = _masked_where(fg, t_bboxes, _SAFE_TARGET)
        return (iou_loss(pred, target, self.iou_type) * bbox_weight).sum()


def _weights(given, default, where):
    merged = dict(default)
    for key, value in (given or {}).items():
        if key not in default:
            raise KeyError(f"losses.{where}: unknown weight '{key}', expected keys {sorted(default)}")
        merged[key] = float(value)
    return merged


class GoldYoloLoss:
    """Plain EffiDeHead loss (`loss.py`): 1.0*VFL + 2.5*IoU + 0.5*DFL, TAL topk 13.

    __call__(outputs, labels): outputs = (feats, cls_scores (B, A, nc), reg_distri
    (B, A, 4*(reg_max+1))) -> (loss, (iou_loss, dfl_loss, cls_loss)).
    """

    component_names = ("iou_loss", "dfl_loss", "cls_loss")

    def __init__(self, num_classes, reg_max=16, use_dfl=True, iou_type="giou", strides=(8, 16, 32),
                 topk=13, loss_weight=None, world_size=1):
        self.branch = DetectionBranch(num_classes, reg_max, use_dfl, iou_type, strides, topk, "af")
        self.loss_weight = _weights(loss_weight, DEFAULT_LOSS_WEIGHT, "GoldYoloLoss")
        self.world_size = world_size

    def weighted(self, loss_cls, loss_iou, loss_dfl):
        w = self.loss_weight
        return w["iou"] * loss_iou, w["dfl"] * loss_dfl, w["class"] * loss_cls

    def __call__(self, outputs, labels):
        if len(outputs) != 3:
            raise ValueError(f"GoldYoloLoss: expected (feats, cls_scores, reg_distri), got {len(outputs)} outputs")
        feats, scores, reg = outputs
        loss_cls, loss_iou, loss_dfl, _ = self.branch(feats, scores, reg, labels)
        parts = self.weighted(loss_cls, loss_iou, loss_dfl)
        total = (parts[0] + parts[1] + parts[2]) * self.world_size
        return total, tuple(p.detach() for p in parts)


class GoldYoloFuseABLoss:
    """Step-1 fuse_ab loss (`engine.py` with `--fuse_ab`): the anchor-free loss (`loss.py`, DFL,
    topk 13) plus the anchor-based loss (`loss_fuseab.py`, no DFL, topk 26); components summed.

    __call__(outputs, labels): outputs = (feats, cls_ab (B, 3*A, nc), reg_ab (B, 3*A, 4),
    cls_af (B, A, nc), reg_af (B, A, 4*(reg_max+1))) -> (loss, (iou_loss, dfl_loss, cls_loss)).
    """

    component_names = ("iou_loss", "dfl_loss", "cls_loss")

    def __init__(self, num_classes, reg_max=16, use_dfl=True, iou_type="giou", strides=(8, 16, 32),
                 topk_af=13, topk_ab=26, loss_weight=None, world_size=1):
        self.af = GoldYoloLoss(num_classes, reg_max, use_dfl, iou_type, strides, topk_af, loss_weight)
        self.ab = DetectionBranch(num_classes, 0, False, iou_type, strides, topk_ab, "ab")
        self.world_size = world_size

    def __call__(self, outputs, labels):
        if len(outputs) != 5:
            raise ValueError("GoldYoloFuseABLoss: expected (feats, cls_ab, reg_ab, cls_af, reg_af), "
                             f"got {len(outputs)} outputs")
        feats, cls_ab, reg_ab, cls_af, reg_af = outputs
        af = self.af.weighted(*self.af.branch(feats, cls_af, reg_af, labels)[:3])
        ab = self.af.weighted(*self.ab(feats, cls_ab, reg_ab, labels)[:3])
        parts = tuple(x + y for x, y in zip(af, ab))
        total = (parts[0] + parts[1] + parts[2]) * self.world_size
        return total, tuple(p.detach() for p in parts)


class GoldYoloDistillLoss:
    """Step-2 self-distillation loss (`loss_distill.py`; `loss_distill_ns.py` when distill_ns).

    __call__(outputs, labels, teacher_outputs, epoch_frac):
    - outputs: (feats, cls_scores, reg_distri) or, with distill_ns, (feats, cls_scores, reg_distri,
      reg_lrtb (B, A, 4) ltrb in stride units);
    - teacher_outputs: the fuse_ab teacher's train outputs; [-2] = cls_af, [-1] = reg_af are used
      (treated as constants);
    - epoch_frac = epoch / max_epoch (0-based epoch, as the official) for the cosine decay 1 -> 0.01.
    Returns (loss, (iou_loss, dfl_loss, cls_loss, distill_cls_loss, distill_dfl_loss)); the
    official logs dfl_loss + distill_dfl_loss and cls_loss + distill_cls_loss as single items.
    With distill_ns, iou_loss includes the IoU loss of the lrtb branch. The cwd feature
    distillation (off in the official recipe) is not implemented.
    """

    component_names = ("iou_loss", "dfl_loss", "cls_loss", "distill_cls_loss", "distill_dfl_loss")

    def __init__(self, num_classes, reg_max=16, use_dfl=True, iou_type="giou", strides=(8, 16, 32),
                 distill_ns=False, temperature=20.0, distill_weight=None, topk=13, loss_weight=None,
                 world_size=1):
        self.base = GoldYoloLoss(num_classes, reg_max, use_dfl, iou_type, strides, topk, loss_weight)
        self.distill_ns = distill_ns
        self.temperature = float(temperature)
        weight = _weights(distill_weight, DEFAULT_DISTILL_WEIGHT, "GoldYoloDistillLoss")
        self.dw_cls = self.base.loss_weight["class"] * weight["class"]
        self.dw_dfl = self.base.loss_weight["dfl"] * weight["dfl"]
        self.world_size = world_size

    def __call__(self, outputs, labels, teacher_outputs, epoch_frac):
        expected = 4 if self.distill_ns else 3
        if len(outputs) != expected:
            raise ValueError(f"GoldYoloDistillLoss(distill_ns={self.distill_ns}): expected {expected} "
                             f"student outputs, got {len(outputs)}")
        feats, scores, reg = outputs[:3]
        t_scores, t_reg = teacher_outputs[-2].detach(), teacher_outputs[-1].detach()
        branch = self.base.branch
        loss_cls, loss_iou, loss_dfl, ex = branch(feats, scores, reg, labels)
        if self.distill_ns:
            lrtb_bboxes = dist2bbox(outputs[3], ex["points_s"])
            loss_iou = loss_iou + branch.weighted_iou(lrtb_bboxes, ex["t_bboxes"], ex["fg"],
                                                      ex["bbox_weight"]) / ex["divisor"]
        T = self.temperature
        d_cls = distill_cls_loss(scores, t_scores, T)
        if branch.use_dfl:
            b, a, _ = reg.shape
            bins = branch.reg_max + 1
            kl = kl_softmax(reg.reshape(b, a, 4, bins), t_reg.reshape(b, a, 4, bins), T)
            fg_f = ex["fg"].to(reg.dtype)
            n_pos = fg_f.sum() * 4
            mean_kl = (kl * fg_f.unsqueeze(-1)).sum() / torch.clamp(n_pos, min=1.0)
            d_dfl = mean_kl * T ** 2 * ex["bbox_weight"].sum() / ex["divisor"]
        else:
            d_dfl = torch.zeros((), dtype=scores.dtype)
        decay = distill_weight_decay(epoch_frac)
        iou, dfl, cls = self.base.weighted(loss_cls, loss_iou, loss_dfl)
        d_cls = self.dw_cls * decay * d_cls
        d_dfl = self.dw_dfl * decay * d_dfl
        parts = (iou, dfl, cls, d_cls, d_dfl)
        total = (iou + dfl + cls + d_cls + d_dfl) * self.world_size
        return total, tuple(p.detach() for p in parts)
