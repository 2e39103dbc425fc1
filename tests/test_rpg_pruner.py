"""RPG schedule, step kinds, tie-breaking, configs, and the PyTorch pruner against an independent
numpy implementation of the spec (section 2.2); the MindSpore pruner is held to the PyTorch one in
parity_tests/test_rpg_parity.py."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from ms_models.rpg import schedule as ms_schedule
from pt_reference.rpg import schedule as pt_schedule
from pt_reference.rpg.pruner import RigLPruner, top_n_mask

REPO = Path(__file__).resolve().parents[1]
IMAGENET_STEPS_PER_EPOCH = 1281167 // 1024  # 1251 at global batch 1024


@pytest.mark.parametrize("mod", [ms_schedule, pt_schedule])
def test_rpg_density_schedule_spec_values(mod):
    """Spec: D = 0.02 -> density 0.71 after 100 of 1126 updates, 0.14 half-way, 0.02 at the end."""
    assert round(mod.exponential_density(100, 0.02, 1126), 2) == 0.71
    assert round(mod.exponential_density(563, 0.02, 1126), 2) == 0.14
    assert mod.exponential_density(1126, 0.02, 1126) == 0.02
    assert mod.exponential_density(2000, 0.02, 1126) == 0.02
    assert mod.exponential_density(0, 0.02, 1126) == 1.0
    assert abs(mod.exponential_density(37, 0.1, 80) - 0.1 ** (37 / 80)) < 1e-12
    assert mod.drop_fraction(0, 0.3, 1000) == pytest.approx(0.3)
    assert mod.drop_fraction(500, 0.3, 1000) == pytest.approx(0.15)
    assert mod.drop_fraction(1000, 0.3, 1000) == pytest.approx(0.0, abs=1e-15)


def test_rpg_step_kinds():
    s = pt_schedule.PruneSchedule(total_steps=40, sparsity=0.9, delta=4, lamb=1.0, t_end_percent=0.5)
    assert s.t_end == 20
    kinds = [s.kind(i) for i in range(24)]
    pre_update = [i for i, k in enumerate(kinds) if not k.update]
    assert pre_update == [3, 7, 11, 15]  # updates after iterations 4, 8, 12, 16 (< T_end = 20)
    assert [i for i, k in enumerate(kinds) if k.rank] == [3, 7, 11, 15, 19]  # 19 < T_end accumulates
    assert [i for i, k in enumerate(kinds) if k.accumulate] == [3, 7, 11, 15, 19]
    assert [st for st in range(1, 41) if s.is_update(st)] == [4, 8, 12, 16]
    s2 = pt_schedule.PruneSchedule(total_steps=40, sparsity=0.9, delta=4, lamb=1.0, grad_accumulation_n=2)
    k2 = s2.kind(2)
    assert (k2.rank, k2.accumulate, k2.update) == (True, True, True)
    k3 = s2.kind(3)
    assert (k3.rank, k3.accumulate, k3.update) == (True, True, False)
    every = pt_schedule.PruneSchedule(total_steps=40, sparsity=0.9, delta=4, lamb=1.0, rank_loss_every_step=True)
    assert all(every.kind(i).rank for i in range(40))
    no_rank = pt_schedule.PruneSchedule(total_steps=40, sparsity=0.9, delta=4, lamb=0.0)
    assert not any(no_rank.kind(i).rank for i in range(40))
    gmp = pt_schedule.PruneSchedule(total_steps=40, sparsity=0.9, delta=4, alpha=0.0)
    assert all(gmp.kind(i).update for i in range(40))
    with pytest.raises(ValueError, match="grad_accumulation_n"):
        pt_schedule.PruneSchedule(total_steps=40, sparsity=0.9, delta=4, grad_accumulation_n=5)


def test_rpg_top_n_mask_breaks_ties_by_index():
    from mindspore import Tensor
    from ms_models.rpg.pruner import top_n_mask as ms_top_n

    score = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.0], np.float32)
    for n, expect in ((2, [1, 2]), (3, [1, 2, 4]), (4, [1, 2, 3, 4]), (0, []), (6, [0, 1, 2, 3, 4, 5])):
        assert np.flatnonzero(top_n_mask(torch.from_numpy(score), n).numpy()).tolist() == expect
        assert np.flatnonzero(ms_top_n(Tensor(score), n).asnumpy()).tolist() == expect


def numpy_update(ws, masks, grads, step, sched, layer_s):
    """Spec 2.2 in numpy (stable argsort for ties); returns (weights, masks, layer sparsities)."""
    ws = [w.copy() for w in ws]
    cur = [m.astype(bool) for m in masks]
    t = step // sched.delta - 1
    if t <= sched.update_times:
        u = sched.update_times
        d = sched.final_density ** (t / u) if t < u else sched.final_density
        scores = np.concatenate([np.abs(w).ravel() for w in ws])
        top_k = round((1 - d) * scores.size)
        thr = np.sort(scores)[top_k - 1] if (d != 1 and top_k > 0) else 0.0
        cur = [np.abs(w) >= thr for w in ws]
        ws = [w * c for w, c in zip(ws, cur)]
        layer_s = [float((~c).sum()) / c.size for c in cur]
    f = sched.alpha / 2 * (1 + math.cos(step * math.pi / sched.t_end))
    out = []
    for w, c, g, s in zip(ws, cur, grads, layer_s):
        if s <= 0:
            out.append(c)
            continue
        n = w.size
        n_remain, n_prune = int((1 - s) * n), int((1 - s) * n * f)
        keep = np.zeros(n, bool)
        keep[np.argsort(-np.abs(w).ravel(), kind="stable")[:n_remain - n_prune]] = True
        order = [i for i in np.argsort(-np.abs(g).ravel(), kind="stable") if not keep[i]]
        grow = np.zeros(n, bool)
        grow[order[:n_prune]] = True
        new = (grow & ~c.ravel()).reshape(w.shape)
        w[new] = 0.0
        out.append((keep | grow).reshape(w.shape))
    ws = [w * m for w, m in zip(ws, out)]
    return ws, out, layer_s


def test_rpg_pytorch_pruner_vs_numpy_reference():
    import pt_reference
    net = pt_reference.create_model("rpg_sparse", base="rpg_cifar_resnet8", num_classes=8, width=4)
    sched = pt_schedule.PruneSchedule(total_steps=60, sparsity=0.85, delta=5, alpha=0.3, iterative_t_end_percent=0.25)
    pr = RigLPruner(net, sched)
    rng = np.random.default_rng(7)
    ws = [w.detach().numpy().astype(np.float64).astype(np.float32) for w in pr.weights]
    masks = [m.numpy().copy() for m in pr.masks]
    layer_s = None
    for step in (5, 10, 15, 20, 25, 30):  # U = 3: global pruning at 5..20, RigL only at 25, 30
        grads = [rng.standard_normal(w.shape).astype(np.float32) for w in ws]
        ws = [(w + 0.05 * rng.standard_normal(w.shape).astype(np.float32) * m).astype(np.float32)
              for w, m in zip(ws, masks)]
        with torch.no_grad():
            for w, g, wn, gn in zip(pr.weights, pr.dense_grads, ws, grads):
                w.copy_(torch.from_numpy(wn))
                g.copy_(torch.from_numpy(gn))
        pr.update(step)
        ws, masks, layer_s = numpy_update(ws, masks, grads, step, sched, layer_s)
        masks = [m.astype(np.float32) for m in masks]
        for name, w, m, wn, mn in zip(pr.names, pr.weights, pr.masks, ws, masks):
            assert np.array_equal(m.numpy(), mn), f"step {step}: mask of {name}"
            assert np.array_equal(w.detach().numpy(), wn), f"step {step}: weights of {name}"
    kept = sum(int(m.sum()) for m in masks)
    total = sum(m.size for m in masks)
    # the official rule keeps the k-th smallest |w| itself (>=) and truncates per layer with int():
    # the reached sparsity is the target to within a few entries, not exactly round(s N) / N
    assert abs((1 - kept / total) - 0.85) <= (len(masks) + 1) / total


@pytest.mark.parametrize("sparsity,lamb,partial_k", [(80, 0.5, 0.2), (90, 0.5, 0.1), (95, 3.0, 0.2), (98, 4.0, 0.2)])
def test_rpg_imagenet_configs(sparsity, lamb, partial_k):
    cfg = load_config(str(REPO / f"configs/rpg/resnet50_imagenet_s{sparsity}.yaml"))
    assert cfg.model.name == "resnet50" and cfg.rpg.sparsity == sparsity / 100
    assert (cfg.rpg.lamb, cfg.rpg.partial_k, cfg.rpg.delta, cfg.rpg.alpha) == (lamb, partial_k, 100, 0.3)
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.train.epochs, cfg.aug.label_smoothing) == (0.4, 1024, 100, 0.1)
    sched = pt_schedule.schedule_from_config(cfg, cfg.train.epochs * IMAGENET_STEPS_PER_EPOCH)
    assert sched.update_times == 1125 and sched.final_density_step() == 112600 < sched.t_end


def test_rpg_demo_config_reaches_target():
    cfg = load_config("rpg")
    assert cfg.model.name == "rpg_cifar_resnet8" and cfg.rpg.sparsity == 0.95
    sched = pt_schedule.schedule_from_config(cfg, cfg.train.epochs * 10)
    assert sched.final_density_step() == 340 and sched.t_end == 360


def test_rpg_config_errors():
    with pytest.raises(ConfigError, match="rpg.partial"):
        load_config("rpg", ["rpg.partialk=0.2"])
    with pytest.raises(ConfigError, match="rpg.wd_rule"):
        load_config("rpg", ["rpg.wd_rule=all"])
    from pt_reference.rpg.task import check_config
    with pytest.raises(ValueError, match="ema.enabled must be false"):
        check_config(load_config("rpg", ["ema.enabled=true"]))
