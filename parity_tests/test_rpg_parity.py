"""RPG parity: rank loss and its gradient against an independent numpy SVD computation, the chosen
k per layer, masks after mask updates given shared weights and dense gradients, and two full
mask-update cycles of training in both frameworks.

Inputs are tie-free: Gaussian weights and gradients drawn from fixed numpy seeds (the only exact
ties are the zeros the pruner itself creates, which the rules resolve by value and flat index).
"""
import os

os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mindspore import Tensor, ops  # noqa: E402

import ms_models  # noqa: E402
import pt_reference  # noqa: E402
from common.config import load_config  # noqa: E402
from common.train_options import TrainOptions  # noqa: E402
from ms_models.rpg import rank_loss as ms_rank  # noqa: E402
from ms_models.rpg.pruner import RigLPruner as MSPruner  # noqa: E402
from ms_models.rpg.schedule import PruneSchedule  # noqa: E402
from parity_tests.harness import assert_all_close, assert_close, copy_pt_to_ms, ms_state_as_pt  # noqa: E402
from pt_reference.rpg import rank_loss as pt_rank  # noqa: E402
from pt_reference.rpg.pruner import RigLPruner as PTPruner  # noqa: E402

# (C_out, C_in, kh, kw): C_out < C_in*k*k, C_out > C_in (1x1), a square one, and an all-zero layer
SHAPES = ((16, 8, 3, 3), (64, 16, 1, 1), (24, 24, 1, 1), (12, 20, 3, 3), (8, 4, 3, 3))
PARTIAL_K = 0.2


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    ws = []
    for i, shape in enumerate(SHAPES):
        w = rng.standard_normal(shape)
        w[rng.random(shape) < 0.3 + 0.1 * i] = 0.0  # sparse, as during pruning
        ws.append(w.astype(np.float32))
    ws[-1][:] = 0.0  # the zero-norm guard
    return ws


def numpy_find_k(s, p):
    """Independent k: loop over k' = 0..n-1, tail energy sum_{i > k'} s_i^2 (1-indexed), the k'
    closest to p, the larger k' on ties."""
    best_k, best_gap = 0, np.inf
    for k in range(len(s)):
        gap = abs(float(np.sum(s[k:] ** 2)) - p)
        if gap <= best_gap:
            best_k, best_gap = k, gap
    return best_k


def numpy_rank_loss(ws, p, thres=0.0):
    """float64 loss, gradients and ks of the spec's formula (analytic gradient through M / ||M||)."""
    losses, grads, ks = [], [], []
    for w in ws:
        w = w.astype(np.float64)
        m = w.reshape(w.shape[0], -1)
        norm = np.linalg.norm(m)
        if norm == 0 or (w == 0).mean() < thres:
            losses.append(0.0), grads.append(np.zeros_like(w)), ks.append(0)
            continue
        wh = m / norm
        u, s, vt = np.linalg.svd(wh, full_matrices=False)
        k = numpy_find_k(s, p)
        c = (u[:, :k] * s[:k]) @ vt[:k]
        losses.append(-np.sum((wh - c) ** 2))
        g = -2.0 * (wh - c)
        grads.append(((g - wh * np.sum(g * wh)) / norm).reshape(w.shape))
        ks.append(k)
    active = sum(1 for v in losses if v != 0)
    return sum(losses) / active, [g / active for g in grads], ks


def test_rpg_find_k_spec_example():
    """Spec: a random 64 x 576 matrix with partial_k 0.2 gives k = 44 (energy kept ~80 %)."""
    x = np.random.default_rng(0).standard_normal((64, 576))
    x /= np.linalg.norm(x)
    s = np.linalg.svd(x, compute_uv=False)
    assert numpy_find_k(s, 0.2) == 44
    assert int(ms_rank.find_k(Tensor((s * s).astype(np.float32)), 0.2)) == 44
    assert pt_rank.find_k(torch.from_numpy((s * s).astype(np.float32)), 0.2) == 44


def test_rpg_rank_loss_and_grad_vs_numpy():
    ws = _weights()
    ref_loss, ref_grads, ref_ks = numpy_rank_loss(ws, PARTIAL_K)
    assert ref_ks[-1] == 0 and all(k > 0 for k in ref_ks[:-1])

    pt_ws = [torch.tensor(w, requires_grad=True) for w in ws]
    pt_loss, pt_ks = pt_rank.rank_loss(pt_ws, PARTIAL_K)
    pt_loss.backward()

    def fn(*wts):
        return ms_rank.rank_loss(wts, PARTIAL_K)

    (ms_loss, ms_ks), ms_grads = ms.value_and_grad(fn, grad_position=tuple(range(len(ws))), has_aux=True)(
        *[Tensor(w) for w in ws])
    (jit_loss, jit_ks) = ms.jit(fn)(*[Tensor(w) for w in ws])  # the form traced into the train step

    assert list(ms_ks.asnumpy()) == ref_ks, f"MindSpore k {list(ms_ks.asnumpy())} vs numpy {ref_ks}"
    assert list(jit_ks.asnumpy()) == ref_ks, f"MindSpore GRAPH k {list(jit_ks.asnumpy())} vs numpy {ref_ks}"
    assert pt_ks == ref_ks, f"PyTorch k {pt_ks} vs numpy {ref_ks}"
    assert_close("rank_loss ms vs numpy", ms_loss, ref_loss, "loss")
    assert_close("rank_loss ms graph vs numpy", jit_loss, ref_loss, "loss")
    assert_close("rank_loss pt vs numpy", pt_loss, ref_loss, "loss")
    assert_close("rank_loss ms vs pt", ms_loss, pt_loss, "loss")
    for i, (g_ms, w_pt, g_ref) in enumerate(zip(ms_grads, pt_ws, ref_grads)):
        assert_close(f"rank_loss grad[{i}] ms vs numpy", g_ms, g_ref, "grads")
        g_pt = w_pt.grad if w_pt.grad is not None else torch.zeros_like(w_pt)  # skipped layer: no graph
        assert_close(f"rank_loss grad[{i}] pt vs numpy", g_pt, g_ref, "grads")
    # the loss is the residual energy: -(energy outside the top k) ~ -partial_k per active layer
    assert -0.3 < float(ref_loss) < -0.1


def test_rpg_rank_loss_sparsity_threshold():
    ws = _weights(1)
    thres = float(np.mean([(w == 0).mean() for w in ws[:2]]))  # keeps only the sparser layers
    ref_loss, _, ref_ks = numpy_rank_loss(ws, PARTIAL_K, thres)
    pt_loss, pt_ks = pt_rank.rank_loss([torch.tensor(w) for w in ws], PARTIAL_K, thres)
    ms_loss, ms_ks = ms_rank.rank_loss([Tensor(w) for w in ws], PARTIAL_K, thres)
    assert ref_ks[0] == 0 and ref_ks[2] > 0
    assert pt_ks == ref_ks and list(ms_ks.asnumpy()) == ref_ks
    assert_close("rank_loss thres ms vs numpy", ms_loss, ref_loss, "loss")
    assert_close("rank_loss thres pt vs numpy", pt_loss, ref_loss, "loss")


def _twin_nets(width=8):
    pt_net = pt_reference.create_model("rpg_sparse", base="rpg_cifar_resnet8", num_classes=8, width=width)
    ms_net = ms_models.create_model("rpg_sparse", base="rpg_cifar_resnet8", num_classes=8, width=width)
    copy_pt_to_ms(pt_net, ms_net)
    return pt_net, ms_net


def test_rpg_masks_identical_after_updates():
    """Five mask updates (dense, three global prunings with RigL, one RigL-only) on shared weights
    and dense gradients; between updates the kept weights move by shared numpy noise."""
    pt_net, ms_net = _twin_nets()
    sched = PruneSchedule(total_steps=100, sparsity=0.9, delta=10, alpha=0.3, t_end_percent=0.901,
                          iterative_t_end_percent=0.3)
    pt_pr, ms_pr = PTPruner(pt_net, sched), MSPruner(ms_net, sched)
    assert pt_pr.names == ms_pr.names and len(pt_pr.names) == 10
    rng = np.random.default_rng(3)
    for step in (10, 20, 30, 40, 50):
        for pw, mw, pg, mg, pm in zip(pt_pr.weights, ms_pr.weights, pt_pr.dense_grads, ms_pr.dense_grads,
                                      pt_pr.masks):
            noise = (0.02 * rng.standard_normal(tuple(pw.shape))).astype(np.float32)
            grad = rng.standard_normal(tuple(pw.shape)).astype(np.float32)
            with torch.no_grad():
                pw.add_(torch.from_numpy(noise) * pm)
                pg.copy_(torch.from_numpy(grad))
            ops.assign(mw, Tensor(pw.detach().numpy()))
            ops.assign(mg, Tensor(grad))
        info_pt, info_ms = pt_pr.update(step), ms_pr.update(step)
        assert info_pt["density_target"] == info_ms["density_target"]
        assert info_pt["layer_sparsity_before_rigl"] == info_ms["layer_sparsity_before_rigl"]
        for name, pm, mm, pw, mw in zip(pt_pr.names, pt_pr.masks, ms_pr.masks, pt_pr.weights, ms_pr.weights):
            assert np.array_equal(pm.numpy(), mm.asnumpy()), f"step {step}: mask of {name} differs"
            assert np.array_equal(pw.detach().numpy(), mw.asnumpy()), f"step {step}: weights of {name} differ"
        print(f"[rpg] update at step {step}: target density {info_pt['density_target']}, "
              f"global sparsity pt {pt_pr.global_sparsity():.6f} ms {ms_pr.global_sparsity():.6f}")
    # the final density D = 0.1 was reached at step 40 (update index U = 3) and RigL keeps the count
    # (int() truncation per layer may drop one entry per layer); regrown weights are 0 until trained
    n = sum(w.numel() for w in pt_pr.weights)
    assert 0 <= pt_pr.mask_sparsity() - 0.9 < 12 / n
    assert pt_pr.mask_sparsity() == ms_pr.mask_sparsity()
    assert pt_pr.global_sparsity() == ms_pr.global_sparsity() >= pt_pr.mask_sparsity()


def _tiny_cfg():
    return load_config("rpg", ["model.name=rpg_cifar_resnet8", "model.kwargs={width: 4}", "data.img_size=16",
                               "data.batch_size=8", "train.epochs=1", "rpg.delta=3", "rpg.sparsity=0.8",
                               "rpg.iterative_t_end_percent=0.1", "rpg.lamb=2.0", "optim.lr=0.05",
                               "optim.weight_decay=1.0e-3", "schedule.warmup_epochs=0"])


def test_rpg_train_two_update_cycles():
    """10 iterations, delta 3: updates after iterations 3 (density 1), 6 (0.447) and 9 (0.2, D);
    iterations 2, 5, 8 add the rank loss and skip the optimizer step. Loss curves, masks after
    every update and final weights agree."""
    from ms_models.engine.optim import build_optimizer as ms_opt, hyper_tensors
    from ms_models.engine.trainer import graph_mode
    from ms_models.rpg.task import build_task as ms_task_of
    from ms_models.rpg.train_step import RPGTrainStep as MSStep
    from pt_reference.engine.optim import build_optimizer as pt_opt
    from pt_reference.rpg.task import build_task as pt_task_of
    from pt_reference.rpg.train_step import RPGTrainStep as PTStep

    cfg = _tiny_cfg()
    opts = TrainOptions.from_config(cfg)
    pt_task, ms_task = pt_task_of(cfg), ms_task_of(cfg)
    copy_pt_to_ms(pt_task.model, ms_task.model)
    pt_groups, ms_groups = pt_task.param_groups(pt_task.model), ms_task.param_groups(ms_task.model)
    assert [g["name"] for g in pt_groups] == [g["name"] for g in ms_groups]
    assert [len(g["params"]) for g in pt_groups] == [len(g["params"]) for g in ms_groups]
    pt_step = PTStep(pt_task, pt_task.model, pt_opt(pt_groups, opts))
    ms_step = MSStep(ms_task, ms_task.model, ms_opt(ms_groups, opts))
    pt_task.model.train()
    ms_task.model.set_train(True)
    wds = np.array([g["weight_decay"] for g in pt_groups])
    lrs, moms = np.full(len(wds), 0.05), np.full(len(wds), 0.9)
    batches = iter(pt_task.train_batches(0))
    losses_pt, losses_ms, ranks = [], [], []
    for s in range(10):
        images, targets = next(batches)
        kind, kind_ms = pt_task.pruner.schedule.kind(s), ms_task.pruner.schedule.kind(s)
        assert (kind.rank, kind.accumulate, kind.update) == (kind_ms.rank, kind_ms.accumulate, kind_ms.update)
        assert kind.update == (s not in (2, 5, 8)) and kind.rank == (s in (2, 5, 8))
        lp, cp = pt_step(lrs, moms, wds, torch.from_numpy(images), torch.from_numpy(targets))
        with graph_mode(True):
            lm, cm = ms_step(*hyper_tensors(lrs, moms, wds), Tensor(images), Tensor(targets))
        losses_pt.append(float(lp))
        losses_ms.append(float(lm.asnumpy()))
        ranks.append((float(cp[1]), float(cm.asnumpy()[1])))
        pt_task.after_step(s + 1)
        ms_task.after_step(s + 1)
        if (s + 1) % 3 == 0:
            for name, pm, mm in zip(pt_task.pruner.names, pt_task.pruner.masks, ms_task.pruner.masks):
                assert np.array_equal(pm.numpy(), mm.asnumpy()), f"after step {s + 1}: mask of {name} differs"
    print("[rpg] losses pt", np.round(losses_pt, 5).tolist(), "ms", np.round(losses_ms, 5).tolist())
    print("[rpg] rank terms (pt, ms)", ranks)
    assert all(r[0] < -0.05 for r in (ranks[2], ranks[5], ranks[8]))
    assert_close("rpg train loss curve", np.array(losses_ms), np.array(losses_pt), "train")
    assert_close("rpg rank-loss terms", np.array([r[1] for r in ranks]), np.array([r[0] for r in ranks]), "train")
    assert abs(pt_task.pruner.mask_sparsity() - 0.8) < 1e-3
    assert pt_task.pruner.global_sparsity() == ms_task.pruner.global_sparsity()
    pt_state = {k: v.detach().numpy() for k, v in pt_task.model.state_dict().items() if "num_batches" not in k}
    ms_state = {k: v for k, v in ms_state_as_pt(ms_task.model, pt_task.model).items() if k in pt_state}
    assert_all_close("rpg final ", ms_state, pt_state, "train")
    for name, w in zip(pt_task.pruner.names, pt_task.pruner.weights):
        zeros_pt = pt_state[name] == 0
        assert np.array_equal(zeros_pt, ms_state[name] == 0), f"zero pattern of {name} differs"
