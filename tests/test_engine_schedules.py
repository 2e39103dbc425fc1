"""Schedules (lr, momentum, EMA decay) against their closed-form formulas, and the engine options."""
import math
from dataclasses import fields

import numpy as np
import pytest

from common.config import Config
from common.schedules import Schedule, ema_decay, warmup_iters
from common.train_options import TrainOptions, _KEYS, engine_defaults


def _sched(groups=None, **kw):
    base = dict(lr=0.1, momentum=0.9, scheduler="cosine", epochs=4, steps_per_epoch=10, lrf=0.05)
    base.update(kw)
    return Schedule(groups or [{"lr_scale": 1.0, "warmup_start_lr": None}], **base)


def test_cosine_per_epoch_matches_formula():
    s = _sched()
    for it in range(40):
        epoch = it // 10
        # lrf + (1 - lrf) * (1 + cos(pi e / E)) / 2, the same curve written the other way round
        want = 0.1 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / 4)))
        lrs, moms = s(it, epoch)
        assert lrs[0] == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert moms[0] == 0.9


def test_cosine_per_iteration_and_linear_match_formula():
    s = _sched(per_iter=True)
    lin = _sched(scheduler="linear")
    for it in range(40):
        want = 0.1 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * it / 40)))
        assert s(it, it // 10)[0][0] == pytest.approx(want, rel=1e-12)
        e = it // 10
        assert lin(it, e)[0][0] == pytest.approx(0.1 * (1 - e / 4 * (1 - 0.05)), rel=1e-12)


def test_step_schedule_matches_formula():
    s = _sched(scheduler="step", milestones=[2, 3], gamma=0.5)
    got = [s(e * 10, e)[0][0] for e in range(4)]
    np.testing.assert_allclose(got, [0.1, 0.1, 0.05, 0.025], rtol=1e-12)
    assert _sched(scheduler="constant")(37, 3)[0][0] == 0.1


def test_warmup_interpolates_lr_per_group_and_momentum_like_yolov6():
    groups = [{"lr_scale": 1.0, "warmup_start_lr": None}, {"lr_scale": 1.0, "warmup_start_lr": 0.1},
              {"lr_scale": 0.5, "warmup_start_lr": None}]
    s = _sched(groups=groups, warmup_epochs=1.5, min_warmup_iters=3, warmup_start_lr=0.0, warmup_momentum=0.5)
    assert s.warmup_iters == 15                                  # max(round(1.5 * 10), 3)
    for it in range(40):
        e = it // 10
        target = 0.1 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * e / 4)))
        lrs, moms = s(it, e)
        if it <= 15:
            want = [np.interp(it, [0, 15], [0.0, target]), np.interp(it, [0, 15], [0.1, target]),
                    np.interp(it, [0, 15], [0.0, 0.5 * target])]
            want_m = np.interp(it, [0, 15], [0.5, 0.9])
        else:
            want, want_m = [target, target, 0.5 * target], 0.9
        np.testing.assert_allclose(lrs, want, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(moms, [want_m] * 3, rtol=1e-12)


def test_warmup_iters_rules():
    assert warmup_iters(3, 100, 1000) == 1000                    # YOLOv6: at least min_warmup_iters
    assert warmup_iters(3, 500, 1000) == 1500
    assert warmup_iters(0, 500, 0) == 0
    assert warmup_iters(0.25, 10, 0) == 2                          # round(2.5) -> 2 (banker's rounding)
    no_mom = _sched(warmup_epochs=1.0, warmup_momentum=None)
    assert no_mom(3, 0)[1][0] == 0.9                               # no momentum warm-up when null


def test_ema_decay_matches_formula():
    for n in (1, 10, 2000, 10000):
        assert ema_decay(n, 0.9999, 2000.0) == pytest.approx(0.9999 * (1 - math.exp(-n / 2000)), rel=1e-14)
    assert ema_decay(5, 0.998, 0) == 0.998


def test_engine_defaults_yaml_matches_options_dataclass():
    tree = engine_defaults()
    defaults = TrainOptions()
    for f in fields(TrainOptions):
        section, key = _KEYS[f.name]
        assert tree[section][key] == getattr(defaults, f.name), f"{section}.{key}"
    declared = {(s, k) for s, sub in tree.items() for k in sub}
    assert declared == set(_KEYS.values())


def test_options_read_sections_and_reject_bad_values():
    cfg = Config(train=Config(epochs=3, grad_clip=1), optim=Config(name="adamw", lr=2e-3),
                 schedule=Config(name="step", milestones=[1]), ema=Config(enabled=False))
    o = TrainOptions.from_config(cfg)
    assert (o.epochs, o.grad_clip, o.optimizer, o.lr, o.scheduler, o.milestones, o.ema) == \
        (3, 1.0, "adamw", 2e-3, "step", [1], False)
    assert o.final_lr_factor() == 0.0                               # lrf null -> min_lr / lr
    with pytest.raises(ValueError, match="optim.name"):
        TrainOptions.from_config(Config(optim=Config(name="lamb")))
    with pytest.raises(ValueError, match="train.epochs"):
        TrainOptions.from_config(Config(train=Config(epochs=1.5)))
    assert TrainOptions().resolved_amp("Ascend") == ("O2", True)
    assert TrainOptions().resolved_amp("CPU") == ("O0", False)
