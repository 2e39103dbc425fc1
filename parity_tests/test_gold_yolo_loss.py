"""Gold-YOLO losses and task-aligned assigner: MindSpore vs PyTorch vs a float64 numpy reference.

Fixed random head outputs (seeded numpy) on a 320x320 grid (A = 2100 anchors, 6300 for the
anchor-based branch), B=2, nc=5, M=8 padded gt rows. The numpy reference re-implements the
official TAL and the VFL / GIoU / SIoU / DFL / KL formulas loop by loop in float64; it also
asserts that the inputs are tie-free (top-k and max-IoU margins), so discrete decisions are
well defined. Checks: identical assignments in all three; every loss within 1e-5 relative
(framework vs framework and vs numpy); gradients of the total loss w.r.t. every prediction
tensor within 1e-3 * max|ref| + 1e-6; the losses under ms.jit(value_and_grad).
"""
import math

import mindspore as ms
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ms_models.gold_yolo import losses as ms_losses
from ms_models.gold_yolo.assigner import TaskAlignedAssigner as MsAssigner
from parity_tests.harness import assert_close
from pt_reference.gold_yolo import losses as pt_losses
from pt_reference.gold_yolo.assigner import TaskAlignedAssigner as PtAssigner

STRIDES = (8, 16, 32)
B, NC, SIZE, M, REG_MAX = 2, 5, 320, 8, 16
TEMPERATURE = 20.0
EPOCH_FRAC = 0.3


# ----------------------------------------------------------------------------- inputs
def _sigmoid(x):
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def make_case(seed, counts):
    """Head outputs of a student (distill_ns layout), a fuse_ab branch and a teacher, plus labels
    with counts[b] real rows (each gt >= 48 px, so it holds >= 26 anchor centres)."""
    rng = np.random.default_rng(seed)
    hw = [(SIZE // s, SIZE // s) for s in STRIDES]
    n = sum(h * w for h, w in hw)
    labels = np.zeros((B, M, 5), np.float32)
    for b, count in enumerate(counts):
        for j in range(count):
            wh = rng.uniform(48, 160, 2)
            centre = rng.uniform(wh / 2, SIZE - wh / 2)
            labels[b, j] = [rng.integers(NC), *(centre - wh / 2), *(centre + wh / 2)]
    bins = 4 * (REG_MAX + 1)
    return {
        "feats_hw": hw,
        "labels": labels,
        "scores": _sigmoid(rng.normal(0, 1.5, (B, n, NC))),
        "reg": rng.normal(0, 2, (B, n, bins)).astype(np.float32),
        "lrtb": rng.uniform(0.5, 6, (B, n, 4)).astype(np.float32),
        "cls_ab": _sigmoid(rng.normal(0, 1.5, (B, 3 * n, NC))),
        "reg_ab": np.concatenate([rng.normal(0, 0.3, (B, 3 * n, 2)),
                                  rng.uniform(1, 8, (B, 3 * n, 2))], -1).astype(np.float32),
        "t_scores": _sigmoid(rng.normal(0, 1.5, (B, n, NC))),
        "t_reg": rng.normal(0, 2, (B, n, bins)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def case():
    return make_case(7, (5, 8))


def ms_feats(case):
    return tuple(ms.Tensor(np.zeros((B, 2, h, w), np.float32)) for h, w in case["feats_hw"])


def pt_feats(case):
    return [torch.zeros(B, 2, h, w) for h, w in case["feats_hw"]]


# ----------------------------------------------------------------------------- numpy reference
def np_anchor_points(hw, reps=1):
    pts, strides = [], []
    for (h, w), s in zip(hw, STRIDES):
        ys, xs = np.meshgrid((np.arange(h) + 0.5) * s, (np.arange(w) + 0.5) * s, indexing="ij")
        p = np.tile(np.stack([xs, ys], -1).reshape(-1, 2), (reps, 1))
        pts.append(p)
        strides.append(np.full((len(p), 1), float(s)))
    return np.concatenate(pts), np.concatenate(strides)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_decode_af(reg, points_s):
    dist = np_softmax(reg.astype(np.float64).reshape(*reg.shape[:2], 4, REG_MAX + 1)) @ np.arange(REG_MAX + 1.0)
    return np.concatenate([points_s - dist[..., :2], points_s + dist[..., 2:]], -1)


def np_decode_ab(reg_ab, points_s):
    r = reg_ab.astype(np.float64)
    c = r[..., :2] + points_s
    return np.concatenate([c - r[..., 2:] / 2, c + r[..., 2:] / 2], -1)


def np_iou(box, boxes, eps=1e-9):
    """IoU of one xyxy box with (N, 4) boxes, as yolov6 iou_calculator."""
    wh = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    a1 = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    a2 = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return inter / (a1 + a2 - inter + eps)


def np_tal(scores, pboxes, points, labels, topk, eps=1e-9, margin=1e-4):
    """Official TAL, one gt at a time. Asserts tie-free inputs. Returns fg, gt_idx, labels, boxes, scores."""
    bs, n, nc = scores.shape
    out = {k: [] for k in ("fg", "idx", "labels", "boxes", "scores")}
    for b in range(bs):
        gts = labels[b].astype(np.float64)
        iou = np.stack([np_iou(g[1:], pboxes[b]) for g in gts])
        metric = np.stack([scores[b, :, int(g[0])] * iou[j] ** 6 for j, g in enumerate(gts)])
        mask = np.zeros((M, n))
        for j, g in enumerate(gts):
            if g[1:].sum() <= 0:
                continue
            inside = np.minimum(np.minimum(points[:, 0] - g[1], points[:, 1] - g[2]),
                                np.minimum(g[3] - points[:, 0], g[4] - points[:, 1])) > eps
            m = metric[j] * inside
            order = np.argsort(-m, kind="stable")
            kth, nxt = m[order[topk - 1]], m[order[topk]]
            assert kth > 0 and kth > nxt * (1 + margin), f"inputs not tie-free: gt {b}/{j} top-{topk} margin"
            mask[j, order[:topk]] = inside[order[:topk]]
        for a in np.nonzero(mask.sum(0) > 1)[0]:
            col = np.sort(iou[:, a])
            assert col[-1] > col[-2] * (1 + margin), f"inputs not tie-free: IoU tie at anchor {b}/{a}"
            mask[:, a] = 0
            mask[np.argmax(iou[:, a]), a] = 1
        fg = mask.sum(0) > 0
        idx = np.where(fg, mask.argmax(0), 0)
        align = metric * mask
        norm = (align * (iou * mask).max(1, keepdims=True) / (align.max(1, keepdims=True) + eps)).max(0)
        t_labels = gts[idx, 0].astype(np.int64)
        out["fg"].append(fg)
        out["idx"].append(idx)
        out["labels"].append(t_labels)
        out["boxes"].append(gts[idx, 1:])
        out["scores"].append(np.eye(nc)[t_labels] * (fg * norm)[:, None])
    return {k: np.stack(v) for k, v in out.items()}


def np_iou_loss(p, t, iou_type, eps=1e-10):
    """1 - GIoU / SIoU of matching (N, 4) xyxy boxes, formulas of yolov6 figure_iou.IOUloss."""
    inter = np.clip(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0, None) * \
        np.clip(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0, None)
    w1, h1 = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1] + eps
    w2, h2 = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1] + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0])
    ch = np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1])
    if iou_type == "giou":
        c_area = cw * ch + eps
        return 1 - (iou - (c_area - union) / c_area)
    if iou_type in ("diou", "ciou"):
        rho2 = ((t[:, 0] + t[:, 2] - p[:, 0] - p[:, 2]) ** 2 + (t[:, 1] + t[:, 3] - p[:, 1] - p[:, 3]) ** 2) / 4
        penalty = rho2 / (cw ** 2 + ch ** 2 + eps)
        if iou_type == "ciou":
            v = 4 / np.pi ** 2 * (np.arctan(w2 / h2) - np.arctan(w1 / h1)) ** 2
            penalty = penalty + v * v / (v - iou + 1 + eps)
        return 1 - (iou - penalty)
    s_cw = (t[:, 0] + t[:, 2] - p[:, 0] - p[:, 2]) * 0.5 + eps
    s_ch = (t[:, 1] + t[:, 3] - p[:, 1] - p[:, 3]) * 0.5 + eps
    sigma = np.hypot(s_cw, s_ch)
    sin_a = np.where(np.abs(s_cw) / sigma > np.sqrt(2) / 2, np.abs(s_ch) / sigma, np.abs(s_cw) / sigma)
    angle = np.cos(2 * np.arcsin(sin_a) - np.pi / 2)
    dist = sum(1 - np.exp((angle - 2) * (s / c) ** 2) for s, c in ((s_cw, cw), (s_ch, ch)))
    shape = sum((1 - np.exp(-np.abs(a - b) / np.maximum(a, b))) ** 4 for a, b in ((w1, w2), (h1, h2)))
    return 1 - (iou - 0.5 * (dist + shape))


def np_dfl(logits, target):
    """Two-bin interpolated cross-entropy, mean over the 4 sides: (N, 4, R), (N, 4) -> (N,)."""
    logp = np.log(np_softmax(logits.astype(np.float64)))
    left = np.floor(target).astype(np.int64)
    wl = left + 1 - target
    ce_l = -np.take_along_axis(logp, left[..., None], -1)[..., 0]
    ce_r = -np.take_along_axis(logp, left[..., None] + 1, -1)[..., 0]
    return (ce_l * wl + ce_r * (1 - wl)).mean(-1)


def np_vfl(p, y, label, alpha=0.75):
    p, y = p.astype(np.float64), y.astype(np.float64)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return (bce * (alpha * p ** 2 * (1 - label) + y * label)).sum()


def np_kl(student, teacher, temperature):
    ps = np_softmax(student.astype(np.float64) / temperature)
    pt = np_softmax(teacher.astype(np.float64) / temperature)
    return (pt * (np.log(pt) - np.log(ps))).sum(-1)


def np_plain_loss(case, iou_type, topk=13):
    """Unweighted (cls, iou, dfl) of loss.py and the assignment, all float64."""
    points, stride = np_anchor_points(case["feats_hw"])
    pts_s = points / stride
    pred_s = np_decode_af(case["reg"], pts_s)
    ref = np_tal(case["scores"].astype(np.float64), pred_s * stride, points, case["labels"], topk)
    fg, t_scores = ref["fg"], ref["scores"]
    divisor = t_scores.sum() if t_scores.sum() > 0 else 1.0
    label = np.eye(NC)[ref["labels"]] * fg[..., None]
    cls = np_vfl(case["scores"], t_scores, label) / divisor
    weight = t_scores.sum(-1)[fg]
    t_box_s = (ref["boxes"] / stride)[fg]
    iou = (np_iou_loss(pred_s[fg], t_box_s, iou_type) * weight).sum() / divisor
    pts_fg = np.broadcast_to(pts_s, pred_s.shape[:2] + (2,))[fg]
    t_ltrb = np.clip(np.concatenate([pts_fg - t_box_s[:, :2], t_box_s[:, 2:] - pts_fg], -1), 0, REG_MAX - 0.01)
    dfl = (np_dfl(case["reg"][fg].reshape(-1, 4, REG_MAX + 1), t_ltrb) * weight).sum() / divisor
    return (cls, iou, dfl), ref


# ----------------------------------------------------------------------------- helpers
def pt_grads(loss_fn, arrays, extra=()):
    """(loss, components, grads w.r.t. `arrays`) of loss_fn(*arrays, *extra) on fresh leaf tensors."""
    leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    total, comps = loss_fn(*leaves, *[torch.tensor(a) for a in extra])
    total.backward()
    return total.detach(), comps, [t.grad for t in leaves]


def ms_grads(loss_fn, arrays, extra=(), jit=False):
    """(loss, components, grads w.r.t. `arrays`) of loss_fn(*arrays, *extra), optionally under
    ms.jit; `extra` (labels, teacher outputs) are graph inputs, as in a training step."""
    step = ms.value_and_grad(loss_fn, grad_position=tuple(range(len(arrays))), has_aux=True)
    if jit:
        step = ms.jit(step)
    (total, comps), grads = step(*[ms.Tensor(a) for a in arrays], *[ms.Tensor(a) for a in extra])
    return total, comps, list(grads)


def compare_grads(prefix, names, ms_g, pt_g):
    for name, gm, gp in zip(names, ms_g, pt_g):
        assert_close(f"{prefix} grad {name}", gm, gp, "grads")


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("branch", ["af", "ab"])
def test_assignments_identical(case, branch):
    """TAL outputs: numpy == PyTorch == MindSpore (indices, fg mask, labels, boxes exactly)."""
    topk = 13 if branch == "af" else 26
    points, stride = np_anchor_points(case["feats_hw"], 1 if branch == "af" else 3)
    if branch == "af":
        scores, pred_s = case["scores"], np_decode_af(case["reg"], points / stride)
    else:
        scores, pred_s = case["cls_ab"], np_decode_ab(case["reg_ab"], points / stride)
    pboxes = (pred_s * stride).astype(np.float32)
    ref = np_tal(scores.astype(np.float64), pboxes.astype(np.float64), points, case["labels"], topk)
    labels = case["labels"]
    args = (scores, pboxes, points.astype(np.float32), labels[..., :1], labels[..., 1:],
            (labels[..., 1:].sum(-1, keepdims=True) > 0).astype(np.float32))
    pt_out = PtAssigner(topk=topk, num_classes=NC)(*[torch.tensor(a) for a in args])
    ms_out = MsAssigner(topk=topk, num_classes=NC)(*[ms.Tensor(a) for a in args])
    n_fg = int(ref["fg"].sum())
    print(f"[assign {branch}] positives {n_fg} of {ref['fg'].size}")
    assert n_fg >= topk * int((labels[..., 1:].sum(-1) > 0).sum()) // 2
    for name, out in (("pytorch", [t.numpy() for t in pt_out]), ("mindspore", [t.asnumpy() for t in ms_out])):
        t_labels, t_boxes, t_scores, fg, idx = out
        assert np.array_equal(fg, ref["fg"]), f"{name}: fg mask differs at {np.argwhere(fg != ref['fg'])[:5]}"
        assert np.array_equal(idx, ref["idx"]), f"{name}: assigned gt index differs"
        assert np.array_equal(t_labels, ref["labels"]), f"{name}: target labels differ"
        assert np.array_equal(t_boxes, ref["boxes"].astype(np.float32)), f"{name}: target boxes differ"
        diff = np.abs(t_scores - ref["scores"]).max()
        print(f"[assign {branch}] {name} target_scores max abs diff vs numpy float64: {diff:.3e}")
        assert diff <= 1e-5
    assert_close(f"assign {branch} target_scores", ms_out[2], pt_out[2], "loss")


@pytest.mark.parametrize("iou_type", ["giou", "siou"])
def test_plain_loss(case, iou_type):
    """VFL, GIoU/SIoU, DFL of the plain head: MS vs PT vs numpy float64; gradients MS vs PT."""
    loss_pt = pt_losses.GoldYoloLoss(NC, REG_MAX, True, iou_type)
    loss_ms = ms_losses.GoldYoloLoss(NC, REG_MAX, True, iou_type)
    fp, fm = pt_feats(case), ms_feats(case)
    arrays, extra = (case["scores"], case["reg"]), (case["labels"],)
    tot_p, comp_p, g_p = pt_grads(lambda s, r, lab: loss_pt((fp, s, r), lab), arrays, extra)
    tot_m, comp_m, g_m = ms_grads(lambda s, r, lab: loss_ms((fm, s, r), lab), arrays, extra)
    (cls, iou, dfl), _ = np_plain_loss(case, iou_type)
    ref_np = {"iou_loss": 2.5 * iou, "dfl_loss": 0.5 * dfl, "cls_loss": cls}
    names = {"iou_loss": iou_type.upper(), "dfl_loss": "DFL", "cls_loss": "VFL"}
    for k, (cm, cp) in enumerate(zip(comp_m, comp_p)):
        key = loss_pt.component_names[k]
        assert_close(f"plain {names[key]} ({iou_type} run)", cm, cp, "loss")
        assert_close(f"plain {names[key]} ({iou_type} run) PT vs numpy", cp, ref_np[key], "loss")
        assert_close(f"plain {names[key]} ({iou_type} run) MS vs numpy", cm, ref_np[key], "loss")
    assert_close(f"plain total ({iou_type})", tot_m, tot_p, "loss")
    compare_grads(f"plain {iou_type}", ("cls_scores", "reg_distri"), g_m, g_p)


def test_plain_loss_empty_image():
    """An image with no gt rows and one with three: losses and gradients still agree."""
    case = make_case(11, (0, 3))
    loss_pt, loss_ms = pt_losses.GoldYoloLoss(NC), ms_losses.GoldYoloLoss(NC)
    fp, fm = pt_feats(case), ms_feats(case)
    arrays, extra = (case["scores"], case["reg"]), (case["labels"],)
    tot_p, comp_p, g_p = pt_grads(lambda s, r, lab: loss_pt((fp, s, r), lab), arrays, extra)
    tot_m, comp_m, g_m = ms_grads(lambda s, r, lab: loss_ms((fm, s, r), lab), arrays, extra)
    (cls, iou, dfl), ref = np_plain_loss(case, "giou")
    assert ref["fg"][0].sum() == 0 and ref["fg"][1].sum() > 0
    assert_close("empty-image total", tot_m, tot_p, "loss")
    assert_close("empty-image total PT vs numpy", tot_p, cls + 2.5 * iou + 0.5 * dfl, "loss")
    compare_grads("empty-image", ("cls_scores", "reg_distri"), g_m, g_p)


@pytest.mark.parametrize("jit", [False, True], ids=["pynative", "jit"])
def test_fuse_ab_loss(case, jit):
    """Step-1 loss (anchor-free + anchor-based branch), MS (PyNative and ms.jit) vs PT."""
    loss_pt, loss_ms = pt_losses.GoldYoloFuseABLoss(NC), ms_losses.GoldYoloFuseABLoss(NC)
    fp, fm = pt_feats(case), ms_feats(case)
    arrays, extra = (case["cls_ab"], case["reg_ab"], case["scores"], case["reg"]), (case["labels"],)

    def ms_fn(a, b, c, d, lab):
        return loss_ms((fm, a, b, c, d), lab)

    tot_p, comp_p, g_p = pt_grads(lambda a, b, c, d, lab: loss_pt((fp, a, b, c, d), lab), arrays, extra)
    tot_m, comp_m, g_m = ms_grads(ms_fn, arrays, extra, jit=jit)
    tag = "fuse_ab" + (" jit" if jit else "")
    assert_close(f"{tag} total", tot_m, tot_p, "loss")
    for name, cm, cp in zip(loss_pt.component_names, comp_m, comp_p):
        assert_close(f"{tag} {name}", cm, cp, "loss")
    compare_grads(tag, ("cls_ab", "reg_ab", "cls_af", "reg_af"), g_m, g_p)
    # the anchor-based branch adds to the anchor-free loss (components summed, as engine.py)
    plain = pt_losses.GoldYoloLoss(NC)((fp, torch.tensor(case["scores"]), torch.tensor(case["reg"])),
                                       torch.tensor(case["labels"]))[0]
    assert float(tot_p) > float(plain) + 1e-3


@pytest.mark.parametrize("distill_ns", [False, True], ids=["ml", "ns"])
def test_distill_loss(case, distill_ns):
    """Self-distillation (class KL, DFL KL, cosine decay; N/S lrtb IoU): MS (ms.jit) vs PT vs numpy."""
    kw = dict(distill_ns=distill_ns, temperature=TEMPERATURE, distill_weight={"class": 0.8, "dfl": 1.0},
              iou_type="siou" if distill_ns else "giou")
    loss_pt, loss_ms = pt_losses.GoldYoloDistillLoss(NC, **kw), ms_losses.GoldYoloDistillLoss(NC, **kw)
    fp, fm = pt_feats(case), ms_feats(case)
    lp = torch.tensor(case["labels"])
    arrays = (case["scores"], case["reg"]) + ((case["lrtb"],) if distill_ns else ())
    n = len(arrays)
    # extra graph inputs: labels, the fuse_ab teacher's (cls_ab, reg_ab, cls_af, reg_af), epoch_frac
    extra = (case["labels"], case["cls_ab"], case["reg_ab"], case["t_scores"], case["t_reg"],
             np.float32(EPOCH_FRAC))

    def pt_fn(*xs):
        return loss_pt((fp, *xs[:n]), xs[n], (fp, *xs[n + 1:n + 5]), xs[n + 5])

    def ms_fn(*xs):
        return loss_ms((fm, *xs[:n]), xs[n], (fm, *xs[n + 1:n + 5]), xs[n + 5])

    tot_p, comp_p, g_p = pt_grads(pt_fn, arrays, extra)
    tot_m, comp_m, g_m = ms_grads(ms_fn, arrays, extra, jit=True)
    tag = "distill_ns" if distill_ns else "distill"
    assert_close(f"{tag} total (jit)", tot_m, tot_p, "loss")
    for name, cm, cp in zip(loss_pt.component_names, comp_m, comp_p):
        assert_close(f"{tag} {name} (jit)", cm, cp, "loss")
    compare_grads(tag, ("cls_scores", "reg_distri", "reg_lrtb")[:len(arrays)], g_m, g_p)

    # numpy: KL terms with the official decay and weights
    decay = ((1 - math.cos(EPOCH_FRAC * math.pi)) / 2) * (0.01 - 1) + 1
    d_cls = np_kl(case["scores"], case["t_scores"], TEMPERATURE).sum() * TEMPERATURE ** 2
    _, ref = np_plain_loss(case, kw["iou_type"])
    fg, t_scores = ref["fg"], ref["scores"]
    kl_rows = np_kl(case["reg"][fg].reshape(-1, REG_MAX + 1), case["t_reg"][fg].reshape(-1, REG_MAX + 1), TEMPERATURE)
    d_dfl = kl_rows.mean() * TEMPERATURE ** 2 * t_scores.sum(-1)[fg].sum() / t_scores.sum()
    assert_close(f"{tag} class KL vs numpy", comp_p[3], 1.0 * 0.8 * decay * d_cls, "loss")
    assert_close(f"{tag} DFL KL vs numpy", comp_p[4], 0.5 * 1.0 * decay * d_dfl, "loss")
    assert_close(f"{tag} class KL MS vs numpy", comp_m[3], 1.0 * 0.8 * decay * d_cls, "loss")
    assert_close(f"{tag} DFL KL MS vs numpy", comp_m[4], 0.5 * 1.0 * decay * d_dfl, "loss")
    if distill_ns:
        points, stride = np_anchor_points(case["feats_hw"])
        pts_s = (points / stride)
        lrtb = case["lrtb"].astype(np.float64)
        box = np.concatenate([pts_s - lrtb[..., :2], pts_s + lrtb[..., 2:]], -1)[fg]
        t_box = (ref["boxes"] / stride)[fg]
        extra = (np_iou_loss(box, t_box, "siou") * t_scores.sum(-1)[fg]).sum() / t_scores.sum()
        base = pt_losses.GoldYoloLoss(NC, iou_type="siou")((fp, torch.tensor(case["scores"]),
                                                            torch.tensor(case["reg"])), lp)[1][0]
        assert_close(f"{tag} lrtb IoU term vs numpy", comp_p[0] - base, 2.5 * extra, "loss")


def test_small_case_formulas_vs_numpy():
    """VFL, GIoU, SIoU, DFL, KL and BCE on a small hand-sized case: both frameworks vs numpy float64."""
    rng = np.random.default_rng(3)
    p = _sigmoid(rng.normal(0, 2, (2, 6, 3)))
    y = (rng.uniform(0, 1, (2, 6, 3)) * (rng.uniform(0, 1, (2, 6, 3)) > 0.6)).astype(np.float32)
    label = (y > 0).astype(np.float32)
    pred = np.array([[10, 12, 40, 50], [5, 5, 9, 30], [100, 80, 160, 120], [0, 0, 20, 20]], np.float32)
    target = np.array([[12, 10, 44, 47], [4, 8, 10, 26], [90, 95, 150, 140], [30, 30, 50, 60]], np.float32)
    logits = rng.normal(0, 2, (5, 4, REG_MAX + 1)).astype(np.float32)
    t_ltrb = rng.uniform(0, REG_MAX - 0.01, (5, 4)).astype(np.float32)
    student, teacher = rng.normal(0, 2, (7, 17)).astype(np.float32), rng.normal(0, 2, (7, 17)).astype(np.float32)
    cases = {
        "VFL": (lambda L, T: L.varifocal_loss(T(p), T(y), T(label)), np_vfl(p, y, label)),
        "GIoU": (lambda L, T: L.iou_loss(T(pred), T(target), "giou"), np_iou_loss(pred.astype(np.float64),
                                                                                  target.astype(np.float64), "giou")),
        "SIoU": (lambda L, T: L.iou_loss(T(pred), T(target), "siou"), np_iou_loss(pred.astype(np.float64),
                                                                                  target.astype(np.float64), "siou")),
        "DIoU": (lambda L, T: L.iou_loss(T(pred), T(target), "diou"), np_iou_loss(pred.astype(np.float64),
                                                                                  target.astype(np.float64), "diou")),
        "CIoU": (lambda L, T: L.iou_loss(T(pred), T(target), "ciou"), np_iou_loss(pred.astype(np.float64),
                                                                                  target.astype(np.float64), "ciou")),
        "DFL": (lambda L, T: L.df_loss(T(logits), T(t_ltrb)), np_dfl(logits, t_ltrb.astype(np.float64))),
        "KL T=20": (lambda L, T: L.kl_softmax(T(student), T(teacher), 20.0), np_kl(student, teacher, 20.0)),
        "KL T=1": (lambda L, T: L.kl_softmax(T(student), T(teacher), 1.0), np_kl(student, teacher, 1.0)),
    }
    for name, (fn, ref) in cases.items():
        assert_close(f"small {name} PT vs numpy", fn(pt_losses, torch.tensor), ref, "loss")
        assert_close(f"small {name} MS vs numpy", fn(ms_losses, ms.Tensor), ref, "loss")
    # cosine decay of the distillation weights: 1 at the first epoch, 0.01 at the last, 0.505 halfway
    for frac, expected in ((0.0, 1.0), (0.5, 0.505), (1.0, 0.01)):
        for L, T in ((pt_losses, torch.tensor), (ms_losses, ms.Tensor)):
            assert L.distill_weight_decay(frac) == pytest.approx(expected, abs=1e-12)
            assert float(L.distill_weight_decay(T(np.float32(frac)))) == pytest.approx(expected, abs=1e-6)
    # the elementwise BCE is torch's F.binary_cross_entropy (official VFL), clamping included
    q = np.array([0.0, 1e-30, 1e-6, 0.3, 0.7, 1 - 1e-6, 1.0], np.float32)
    t = np.array([0.2, 0.2, 0.9, 0.1, 0.5, 0.3, 0.6], np.float32)
    official = F.binary_cross_entropy(torch.tensor(q), torch.tensor(t), reduction="none")
    assert_close("BCE clamp PT vs F.binary_cross_entropy", pt_losses.bce_clamped(torch.tensor(q), torch.tensor(t)),
                 official, "loss")
    assert_close("BCE clamp MS vs F.binary_cross_entropy", ms_losses.bce_clamped(ms.Tensor(q), ms.Tensor(t)),
                 official, "loss")


def test_anchors_match_numpy():
    """Anchor points / strides / boxes of both trees equal the numpy grid (af and ab, train and eval)."""
    from ms_models.gold_yolo.anchors import generate_anchors as ms_gen
    from pt_reference.gold_yolo.anchors import generate_anchors as pt_gen
    case = make_case(0, (0, 0))
    for mode, reps in (("af", 1), ("ab", 3)):
        points, stride = np_anchor_points(case["feats_hw"], reps)
        boxes = np.concatenate([points - 2.5 * stride, points + 2.5 * stride], -1)
        for gen, feats, to_np in ((pt_gen, pt_feats(case), lambda x: x.numpy()),
                                  (ms_gen, ms_feats(case), lambda x: x.asnumpy())):
            anchor_boxes, pts, counts, strides = gen(feats, STRIDES, mode=mode)
            assert np.array_equal(to_np(pts), points) and np.array_equal(to_np(strides), stride)
            assert np.array_equal(to_np(anchor_boxes), boxes)
            assert list(counts) == [h * w * reps for h, w in case["feats_hw"]]
            pts_eval, strides_eval = gen(feats, STRIDES, mode=mode, is_eval=True)
            assert np.array_equal(to_np(pts_eval), points / stride)
            assert np.array_equal(to_np(strides_eval), stride)
