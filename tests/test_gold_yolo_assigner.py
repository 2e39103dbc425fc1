"""Task-aligned assigner of Gold-YOLO on hand-worked cases (both trees), and MindSpore under ms.jit
against PyNative.

Hand cases use 8 anchor points on one row, (4 + 8 i, 4) for i = 0..7, and gt boxes of height 8:
gt0 = [0, 0, 30, 8] holds anchors 0-3, gt1 = [18, 0, 50, 8] holds anchors 2-5, anchors 6-7 lie
outside every gt.
"""
import mindspore as ms
import numpy as np
import pytest
import torch

from ms_models.gold_yolo.assigner import TaskAlignedAssigner as MsAssigner
from pt_reference.gold_yolo.assigner import TaskAlignedAssigner as PtAssigner

ms.set_device("CPU")
ms.runtime.launch_blocking()

POINTS = np.stack([4 + 8 * np.arange(8), np.full(8, 4)], -1).astype(np.float32)
GT0 = [1, 0, 0, 30, 8]
GT1 = [0, 18, 0, 50, 8]
PAD = [0, 0, 0, 0, 0]
NC = 2


def run(framework, topk, scores, pred, rows, points=POINTS, jit=False):
    """Assign one or more images; returns numpy (labels, boxes, scores, fg, gt_idx)."""
    labels = np.asarray(rows, np.float32)
    if labels.ndim == 2:
        labels, scores, pred = labels[None], scores[None], pred[None]
    mask_gt = (labels[..., 1:].sum(-1, keepdims=True) > 0).astype(np.float32)
    args = [np.asarray(a, np.float32) for a in (scores, pred, points, labels[..., :1], labels[..., 1:], mask_gt)]
    if framework == "pt":
        out = PtAssigner(topk=topk, num_classes=scores.shape[-1])(*[torch.tensor(a) for a in args])
        return [o.numpy() for o in out]
    assigner = MsAssigner(topk=topk, num_classes=scores.shape[-1])

    def graph_call(*xs):
        return assigner(*xs)

    call = ms.jit(graph_call) if jit else assigner
    return [o.asnumpy() for o in call(*[ms.Tensor(a) for a in args])]


FRAMEWORKS = ["pt", "ms", "ms-jit"]


def assign(fw, *args, **kw):
    return run("ms" if fw.startswith("ms") else "pt", *args, jit=fw == "ms-jit", **kw)


def single_gt_case():
    """gt0 only, predictions equal to gt0 (IoU 1), class-1 scores decreasing differently."""
    scores = np.zeros((8, NC), np.float32)
    scores[:, 1] = [0.9, 0.5, 0.7, 0.3, 0.95, 0.99, 0.8, 0.1]
    pred = np.tile(np.array(GT0[1:], np.float32), (8, 1))
    return scores, pred


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_topk_count_and_outside_anchors(fw):
    """topk=3 of the 4 anchors inside gt0: the 3 best metrics (0, 2, 1); the high-score anchors 4, 5
    lie outside every gt and stay background; targets normalised by the best metric (0.9)."""
    scores, pred = single_gt_case()
    t_labels, t_boxes, t_scores, fg, idx = assign(fw, 3, scores, pred, [GT0, PAD])
    assert fg[0].tolist() == [True, True, True, False, False, False, False, False]
    assert fg.sum() == 3
    assert idx[0].tolist() == [0] * 8
    assert t_labels[0, :3].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(t_boxes[0, :3], np.tile(np.float32(GT0[1:]), (3, 1)))
    # metric = score * IoU^6 with IoU = 240 / (240 + 1e-9); normalised: metric * max IoU / max metric
    expected = np.zeros((8, NC))
    expected[:3, 1] = [1.0, 0.5 / 0.9, 0.7 / 0.9]
    np.testing.assert_allclose(t_scores[0], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_default_topk_13_takes_every_candidate_of_a_small_gt(fw):
    """With the default top-13, 16 anchors and only 4 of them inside gt0, exactly those 4 are
    foreground."""
    scores, pred = single_gt_case()
    points = np.stack([4 + 8 * np.arange(16), np.full(16, 4)], -1)
    scores, pred = np.concatenate([scores, scores]), np.concatenate([pred, pred])
    fg = assign(fw, 13, scores, pred, [GT0], points=points)[3]
    assert fg[0].tolist() == [True] * 4 + [False] * 12


@pytest.mark.parametrize("fw", ["pt", "ms"])
def test_fewer_anchors_than_topk_is_an_error(fw):
    scores, pred = single_gt_case()
    with pytest.raises(ValueError, match="topk=13 exceeds the 8 anchors"):
        assign(fw, 13, scores, pred, [GT0])


def two_gt_case():
    """Anchor 2 predicts [16,0,32,8] (IoU 0.4375 with gt0, 0.4118 with gt1); anchor 3 predicts
    [24,0,48,8] (IoU 0.125 with gt0, 0.75 with gt1)."""
    scores = np.full((8, NC), 0.5, np.float32)
    pred = np.array([GT0[1:], GT0[1:], [16, 0, 32, 8], [24, 0, 48, 8], GT1[1:], GT1[1:],
                     [50, 0, 64, 8], [50, 0, 64, 8]], np.float32)
    return scores, pred


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_anchor_in_two_gts_goes_to_higher_iou(fw):
    """topk=4: gt0 takes anchors 0-3, gt1 takes 2-5; anchor 2 -> gt0, anchor 3 -> gt1 by IoU."""
    scores, pred = two_gt_case()
    t_labels, t_boxes, t_scores, fg, idx = assign(fw, 4, scores, pred, [GT0, GT1, PAD])
    assert fg[0].tolist() == [True] * 6 + [False] * 2
    assert idx[0, :6].tolist() == [0, 0, 0, 1, 1, 1]
    assert t_labels[0, :6].tolist() == [1, 1, 1, 0, 0, 0]
    np.testing.assert_array_equal(t_boxes[0, 2], np.float32(GT0[1:]))
    np.testing.assert_array_equal(t_boxes[0, 3], np.float32(GT1[1:]))
    # gt0 keeps anchors 0, 1 (IoU 1) and 2 (IoU 0.4375): metric 0.5 * IoU^6, max metric 0.5, max IoU 1
    assert t_scores[0, 2, 1] == pytest.approx(0.4375 ** 6, rel=1e-5)
    assert t_scores[0, 3, 0] == pytest.approx(0.75 ** 6, rel=1e-5)
    assert t_scores[0, 2, 0] == 0 and t_scores[0, 3, 1] == 0


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_padded_rows_assign_nothing(fw):
    """Zero rows (even between real rows) change nothing; an image of only padding is background.
    (Labels and boxes of background anchors are those of gt row 0, as in the official code, so
    they are compared on foreground anchors only.)"""
    scores, pred = two_gt_case()
    ref = assign(fw, 4, scores, pred, [GT0, GT1])
    padded = assign(fw, 4, scores, pred, [PAD, GT0, PAD, GT1, PAD])
    fg = ref[3][0]
    assert np.array_equal(fg, padded[3][0]) and fg.sum() == 6
    assert [int(i) for i in padded[4][0, :6]] == [1, 1, 1, 3, 3, 3]
    for k in (0, 1):
        np.testing.assert_array_equal(ref[k][0][fg], padded[k][0][fg])
    np.testing.assert_array_equal(ref[2], padded[2])
    empty = assign(fw, 4, scores, pred, [PAD, PAD, PAD])
    assert not empty[3].any() and not empty[2].any() and not empty[4].any()


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_ties_break_by_lowest_index(fw):
    """All 4 candidates of gt0 have the same metric: top-2 takes anchors 0 and 1 in every mode."""
    scores, pred = single_gt_case()
    scores[:, 1] = 0.6
    fg = assign(fw, 2, scores, pred, [GT0])[3]
    assert fg[0].tolist() == [True, True] + [False] * 6


def test_mindspore_jit_matches_pynative():
    """A random 160x160 batch (525 anchors, 2 images, up to 6 gts): GRAPH == PyNative."""
    rng = np.random.default_rng(5)
    points = []
    for s in (8, 16, 32):
        n = 160 // s
        ys, xs = np.meshgrid((np.arange(n) + 0.5) * s, (np.arange(n) + 0.5) * s, indexing="ij")
        points.append(np.stack([xs, ys], -1).reshape(-1, 2))
    points = np.concatenate(points).astype(np.float32)
    a = len(points)
    labels = np.zeros((2, 6, 5), np.float32)
    for b, count in enumerate((6, 2)):
        for j in range(count):
            wh = rng.uniform(20, 90, 2)
            c = rng.uniform(wh / 2, 160 - wh / 2)
            labels[b, j] = [rng.integers(3), *(c - wh / 2), *(c + wh / 2)]
    scores = rng.uniform(0.01, 0.99, (2, a, 3)).astype(np.float32)
    half = rng.uniform(4, 40, (2, a, 4)).astype(np.float32)
    pred = np.concatenate([points - half[..., :2], points + half[..., 2:]], -1)
    eager = [np.asarray(o) for o in run("ms", 13, scores, pred, labels, points)]
    graph = [np.asarray(o) for o in run("ms", 13, scores, pred, labels, points, jit=True)]
    torch_out = run("pt", 13, scores, pred, labels, points)
    assert eager[3].sum() > 30
    for k in (0, 1, 3, 4):
        np.testing.assert_array_equal(graph[k], eager[k])
        np.testing.assert_array_equal(torch_out[k], eager[k])
    diff = np.abs(graph[2] - eager[2]).max()
    print(f"target_scores GRAPH vs PyNative max abs diff {diff:.3e}")
    assert diff <= 1e-6
