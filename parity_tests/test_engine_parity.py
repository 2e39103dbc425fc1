"""Level 4 (training) parity of the engines: the toy task (tests/engine_toy.py) trained 5 steps by
``ms_models.engine.Trainer`` and ``pt_reference.engine.Trainer`` from the same weights on the same
batches: loss curves, final weights, EMA weights and the final eval within 1e-3 relative."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common.runlog import read_jsonl  # noqa: E402
from engine_toy import PT2MS_NAMES, build_ms_task, build_pt_task, ms_state, pt_state, toy_config  # noqa: E402
from harness import assert_all_close, assert_close  # noqa: E402
from ms_models.engine import Trainer as MsTrainer  # noqa: E402
from pt_reference.engine import Trainer as PtTrainer  # noqa: E402

CASES = {
    # YOLOv6-style: 3 groups, bias warm-up from 0.05, momentum warm-up, nesterov, per-epoch cosine
    "sgd": dict(train={"epochs": 1, "grad_clip": 2.0, "log_interval": 0},
                optim={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
                schedule={"warmup_epochs": 0.6, "warmup_momentum": 0.5, "lrf": 0.1},
                ema={"decay": 0.9, "tau": 2.0}, groups="yolo", steps=5),
    # AdamW over the default decay / no-decay split, per-iteration cosine
    "adamw": dict(train={"epochs": 1, "log_interval": 0},
                  optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
                  schedule={"per_iter": True, "lrf": 0.2}, ema={"decay": 0.8, "tau": 0.0}, steps=5),
}


def _curve(run_dir, key):
    return np.array([r[key] for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "loss" in r])


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_trains_the_same_in_both_frameworks(case, tmp_path):
    cfg = toy_config(**CASES[case])
    msk, ptk = build_ms_task(cfg), build_pt_task(cfg)
    np.testing.assert_array_equal(ms_state(msk.model)["conv.weight"], pt_state(ptk.model)["conv.weight"])
    ms_trainer = MsTrainer(msk, cfg, tmp_path / "ms")
    ms_final = ms_trainer.fit()
    pt_trainer = PtTrainer(ptk, cfg, tmp_path / "pt")
    pt_final = pt_trainer.fit()
    for key in ("loss",) + msk.loss_names:
        a, b = _curve(tmp_path / "ms", key), _curve(tmp_path / "pt", key)
        assert len(a) == len(b) == 5
        assert_close(f"{case} {key} curve", a, b, "train", family="engine")
    ms_w, pt_w = ms_state(msk.model), pt_state(ptk.model)
    assert_all_close(f"{case} weight ", ms_w, pt_w, "train", family="engine")
    back = {v: k for k, v in PT2MS_NAMES.items()}
    ms_ema = {back.get(s.name[len("ema."):], s.name[len("ema."):]): s.asnumpy() for s in ms_trainer.ema.shadow}
    pt_ema = {k: v.numpy() for k, v in pt_trainer.ema.shadow.items()}
    assert_all_close(f"{case} ema ", ms_ema, pt_ema, "train", family="engine")
    assert_close(f"{case} final eval logit_sum", ms_final["logit_sum"], pt_final["logit_sum"], "train",
                 family="engine")
    moved = max(float(np.abs(pt_w[k] - v).max()) for k, v in pt_state(build_pt_task(cfg).model).items())
    assert moved > 1e-2
