"""Species196 parity, level 4: 5 optimizer steps of every trainable track through the real tasks
and engines of both frameworks (MindSpore PyNative step, same Cell as the GRAPH one), from the same
weights on the same numpy batches: loss curves (total and components) and every trained tensor."""
from pathlib import Path

import numpy as np
import pytest

from common.config import load_config
from common.data.species196_fixture import species196_fixture_root
from common.runlog import read_jsonl
from common.weights import convert_state_dict
from harness import assert_close, check_close
from ms_models.engine import Trainer as MsTrainer
from ms_models.species196.task import build_task as build_ms_task
from ms_models.utils.weights import load_pt_state_into, state_numpy as ms_numpy
from pt_reference.engine import Trainer as PtTrainer
from pt_reference.species196.task import build_task as build_pt_task
from pt_reference.utils.weights import state_numpy as pt_numpy

COMMON = ["data.img_size=32", "data.batch_size=4", "data.eval_batch_size=12", "data.workers=0", "train.epochs=1",
          "train.max_steps=5", "train.graph_mode=false", "train.log_interval=0", "report.confusion_png=false",
          "model.kwargs.widths=[8, 16, 16, 32]", "model.drop_path_rate=0.0", "probe.pretrained=null",
          "mae.kwargs.embed_dim=32", "mae.kwargs.depth=2", "mae.kwargs.num_heads=2", "mae.kwargs.decoder_embed_dim=24",
          "mae.kwargs.decoder_depth=1", "mae.kwargs.decoder_num_heads=2", "mae.kwargs.mlp_ratio=2.0",
          "mae.knn_k=5", "schedule.warmup_epochs=0.0"]
TRACKS = {
    "supervised": ["optim.lr=0.05"],
    "fixmatch": ["data.batch_size=2", "fixmatch.mu=3", "fixmatch.threshold=0.25", "fixmatch.temperature=0.5", "fixmatch.steps_per_epoch=5",
                 "optim.lr=0.05"],
    "mae_pretrain": ["data.batch_size=6", "optim.lr=2.0e-3"],
    "linear_probe": ["optim.lr=0.05"],
    "finetune": ["optim.lr=1.0e-3"],
}


ADAM_TRACKS = ("mae_pretrain", "finetune")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return species196_fixture_root(tmp_path_factory.mktemp("s196"), train_per_class=4, val_per_class=2, unlabeled=12)


def _curve(run_dir, key):
    return np.array([r[key] for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "loss" in r])


@pytest.mark.parametrize("track", list(TRACKS))
def test_five_training_steps_match(root, tmp_path, track):
    cfg = load_config("species196", [f"data.root={root}", f"track={track}", f"train.output_dir={tmp_path}",
                                     *COMMON, *TRACKS[track]])
    pt_task = build_pt_task(cfg)
    ms_task = build_ms_task(cfg)
    start = pt_numpy(pt_task.model)
    extra = {}
    if track == "linear_probe":   # MindSpore's BatchNorm1d(affine=False) keeps fixed gamma=1 / beta=0 parameters
        extra = {"head.0.weight": np.ones(start["head.0.running_mean"].shape, np.float32),
                 "head.0.bias": np.zeros(start["head.0.running_mean"].shape, np.float32)}
    load_pt_state_into(ms_task.model, {**start, **extra})
    b_ms, b_pt = next(iter(ms_task.train_batches(0))), next(iter(pt_task.train_batches(0)))
    for a, b in zip(b_ms, b_pt):
        np.testing.assert_array_equal(a, b)
    MsTrainer(ms_task, cfg, tmp_path / "ms").fit()
    PtTrainer(pt_task, cfg, tmp_path / "pt").fit()
    for key in ("loss",) + ms_task.loss_names:
        a, b = _curve(tmp_path / "ms", key), _curve(tmp_path / "pt", key)
        print(track, key, "ms", a, "pt", b)
        assert len(a) == len(b) == 5
        if key == "mask_rate":
            np.testing.assert_array_equal(a, b)       # identical pseudo-label decisions
            assert a.max() > 0, "no pseudo-label passed the threshold: the unlabeled term was not exercised"
        else:
            assert_close(f"{track} {key} curve", a, b, "train")
    pt_w = {k: v for k, v in pt_numpy(pt_task.model).items() if not k.endswith("num_batches_tracked")}
    ms_w = {k: v for k, v in ms_numpy(ms_task.model).items() if k not in ("head.0.gamma", "head.0.beta")}
    ms_as_pt = convert_state_dict(ms_w, {k: v.shape for k, v in pt_w.items()}, "ms2pt")
    trained = [k for k in pt_w if np.abs(pt_w[k] - start[k]).max() > 0]
    frozen = [k for k in pt_w if k not in trained]
    if track == "linear_probe":
        assert sorted(trained) == ["head.0.running_mean", "head.0.running_var", "head.1.bias", "head.1.weight"]
    else:
        assert len(trained) >= 0.8 * len(pt_w), f"only {len(trained)} of {len(pt_w)} tensors changed"
    bad = []
    for k in trained:
        if k.endswith("attn.qkv.bias") and track in ADAM_TRACKS:
            q_ms, k_ms, v_ms = np.split(ms_as_pt[k], 3)
            q_pt, k_pt, v_pt = np.split(pt_w[k], 3)
            bad += [f"{k}[{n}]" for n, a, b in (("q", q_ms, q_pt), ("v", v_ms, v_pt))
                    if not check_close(f"{track} weight {k}[{n}]", a, b, "train")]
            # key bias: true gradient exactly 0 (softmax is shift-invariant per query); Adam turns the
            # float32 round-off gradients into lr-sized steps of random sign, in each framework alike.
            diff = np.abs(k_ms - k_pt).max()
            print(f"{track} {k}[k] (not compared, zero true gradient): max |ms - pt| {diff:.3e}, "
                  f"max |value| {np.abs(k_pt).max():.3e}")
        elif not check_close(f"{track} weight {k}", ms_as_pt[k], pt_w[k], "train"):
            bad.append(k)
    assert not bad, f"{len(bad)} of {len(trained)} trained tensors differ beyond the level-4 tolerance: {bad[:8]}"
    for k in frozen:
        np.testing.assert_array_equal(ms_as_pt[k], start[k], err_msg=f"{track}: {k} should not have changed")
