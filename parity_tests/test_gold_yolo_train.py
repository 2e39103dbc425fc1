"""Level 4 (training) parity of Gold-YOLO: 5 optimizer steps of N at 320 px with mosaic batches,
through the real task and engine of each framework (YOLOv6 groups, bias and momentum warm-up,
nesterov SGD, EMA), from the same weights on the same numpy batches.

The MindSpore step runs in PyNative here (the GRAPH step is the same Cell, checked equal to
PyNative by the engine tests, and exercised end to end by tests/test_gold_yolo_e2e.py).

ReLU/ReLU6 decisions are discrete: among the ~10^7 pre-activations of a step a few lie within
rounding of 0, and their branch differs between MindSpore and torch (as between torch float32 and
float64). Each flip changes the backward of everything upstream: at the first step, from identical
weights, the flips alone put the parameter gradients 2% (median) apart, and by step 4 the weights
(and the TAL assignment they produce) have drifted apart. So MindSpore's decisions are recorded and
replayed in torch (``ClampDecisions``) after asserting that every disagreement is a near-tie, and
the task-aligned assignment (foreground mask, assigned gt) of every step must be identical.

What is asserted: identical batches, loss curves (total and every component) within the level-4
tolerance over the 5 steps, identical assignments at every step, and that training moved most of the
network. What is measured and recorded but not asserted: per-tensor final weights within 1e-3 (700 of
709 tensors meet it, the worst being zero-initialised ``attn.proj.1.bn.weight``), and the count of
ReLU disagreements farther from 0 than the forward tolerance. A float64 torch run with the same
decisions shows torch fp32 meets 1e-3 for every tensor while MindSpore's CPU kernels drift 10-50x
further from float64 from the first step (less precise reductions, amplified by this network's
dynamics); see docs/gold_yolo.md, "Training parity".
"""
from pathlib import Path

import numpy as np

from common.config import load_config
from common.runlog import read_jsonl
from harness import ClampDecisions, assert_close, check_close
from ms_models.engine import Trainer as MsTrainer
from ms_models.gold_yolo.task import build_task as build_ms_task
from ms_models.utils.weights import load_pt_state_into, state_numpy as ms_numpy
from pt_reference.engine import Trainer as PtTrainer
from pt_reference.gold_yolo.task import build_task as build_pt_task
from pt_reference.utils.weights import load_numpy_state as pt_load, state_numpy as pt_numpy


def _away_from_init(state, seed=0):
    """Start from a trained-looking point instead of the degenerate initialisation: at init the
    prediction convs are zero (no gradient reaches the backbone on step 1) and every BN bias is
    zero, so after 5 steps those biases hold only tiny accumulated updates whose relative error
    measures float32 cancellation, not the port. Random prediction weights and BN biases (numpy,
    shared by both frameworks) make every tensor carry a real signal."""
    rng = np.random.default_rng(seed)
    out = dict(state)
    for k, v in state.items():
        if k.startswith("detect.") and "_preds" in k and k.endswith("weight"):
            out[k] = rng.normal(0.0, 0.01, v.shape).astype(np.float32)
        elif k.endswith("bn.bias") or (".rbr_identity." in k and k.endswith("bias")):
            out[k] = rng.normal(0.0, 0.05, v.shape).astype(np.float32)
    return out

OVERRIDES = [
    "data.img_size=320", "data.max_boxes=12", "data.demo_train_images=12", "data.demo_val_images=2",
    "data.workers=0", "aug.mosaic=1.0", "train.batch_size=2", "train.epochs=1", "train.max_steps=5",
    "train.graph_mode=false", "train.log_interval=0", "eval.batch_size=2", "eval.plot_images=0",
    "schedule.min_warmup_iters=4", "ema.tau=2.0", "optim.lr=0.01", "solver.warmup_bias_lr=0.01",
    "model.drop_path_rate=0.0",   # stochastic depth draws framework-local random masks
]


def _wrap_forward_loss(task, begin, end):
    """Call ``begin(i)`` / ``end()`` around the i-th ``task.forward_loss`` (one per training step)."""
    original, count = task.forward_loss, [0]

    def forward_loss(*args):
        begin(count[0])
        count[0] += 1
        try:
            return original(*args)
        finally:
            end()
    task.forward_loss = forward_loss


class _PtAssignerSpy:
    """Wraps the torch TAL assigner; appends (fg_mask, target_gt_idx) of every call to ``log``."""

    def __init__(self, assigner, log):
        self.assigner, self.log = assigner, log

    def __call__(self, *args):
        out = self.assigner(*args)
        self.log.append((out[3].numpy().copy(), out[4].numpy().copy()))
        return out


def _curve(run_dir, key):
    return np.array([r[key] for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "loss" in r])


def test_gold_yolo_n_five_training_steps_match(tmp_path):
    cfg = load_config("gold_yolo", OVERRIDES)
    pt_task = build_pt_task(cfg)
    ms_task = build_ms_task(cfg)
    start = _away_from_init(pt_numpy(pt_task.model))
    pt_load(pt_task.model, start)
    load_pt_state_into(ms_task.model, start)
    first_ms = next(iter(ms_task.train_batches(0)))
    first_pt = next(iter(pt_task.train_batches(0)))
    for a, b in zip(first_ms, first_pt):
        np.testing.assert_array_equal(a, b)
    assert (first_ms[1][..., 1:].sum(-1) > 0).sum() > 0, "mosaic batch without boxes"

    clamps = ClampDecisions(ms_task.model, pt_task.model)
    ms_assign, pt_assign = [], []
    ms_task.loss_fn.branch.assigner.register_forward_hook(
        lambda cell, inputs, out: ms_assign.append((out[3].asnumpy(), out[4].asnumpy())))
    pt_task.loss_fn.branch.assigner = _PtAssignerSpy(pt_task.loss_fn.branch.assigner, pt_assign)
    _wrap_forward_loss(ms_task, lambda i: clamps.begin_ms(), clamps.end_ms)
    _wrap_forward_loss(pt_task, clamps.begin_pt, clamps.end_pt)
    MsTrainer(ms_task, cfg, tmp_path / "ms").fit()
    PtTrainer(pt_task, cfg, tmp_path / "pt").fit()
    clamps.stop()
    for key in ("loss",) + ms_task.loss_names:
        print(key, "ms", _curve(tmp_path / "ms", key), "pt", _curve(tmp_path / "pt", key))
    print(f"ReLU/ReLU6 decisions replayed: {len(clamps.forwards)} forwards, {clamps.flips} elements where "
          f"torch differed, farthest {clamps.worst_margin:.3g} x 1e-4 * max(1, max|pre|) from the boundary")
    assert len(clamps.forwards) == 5
    print(f"ReLU/ReLU6 disagreements beyond the near-tie margin: {clamps.far_flips} "
          f"(step index, module): {sorted(clamps.far_by.items())[:12]}")
    assert len(ms_assign) == len(pt_assign) == 5
    for step, ((fg_ms, idx_ms), (fg_pt, idx_pt)) in enumerate(zip(ms_assign, pt_assign), 1):
        assert fg_pt.sum() > 0, f"step {step}: no foreground anchor"
        np.testing.assert_array_equal(fg_ms, fg_pt, err_msg=f"step {step}: foreground masks differ")
        np.testing.assert_array_equal(np.where(fg_pt, idx_ms, 0), np.where(fg_pt, idx_pt, 0),
                                      err_msg=f"step {step}: assigned gt indices differ")
    for key in ("loss",) + ms_task.loss_names:
        a, b = _curve(tmp_path / "ms", key), _curve(tmp_path / "pt", key)
        assert len(a) == len(b) == 5
        assert_close(f"N 320 mosaic {key} curve", a, b, "train")
    ms_w = ms_numpy(ms_task.model)
    pt_w = {k: v for k, v in pt_numpy(pt_task.model).items() if not k.endswith("num_batches_tracked")}
    from common.weights import convert_state_dict
    ms_as_pt = convert_state_dict(ms_w, {k: v.shape for k, v in pt_w.items()}, "ms2pt", strict=False)
    trained = [k for k in pt_w if np.abs(pt_w[k] - start[k]).max() > 0]
    assert len(trained) > 300, f"only {len(trained)} tensors changed in 5 steps"
    within = [k for k in trained if check_close(f"N 320 weight {k}", ms_as_pt[k], pt_w[k], "train")]
    print(f"final weights within the level-4 tolerance: {len(within)} of {len(trained)} trained tensors")
