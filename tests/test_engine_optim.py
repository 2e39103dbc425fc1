"""MindSpore optimizers vs torch.optim, EMA vs numpy, clipping vs numpy, loss scaling vs
ms.amp.DynamicLossScaler, and the compiled step's skip of non-finite steps."""
import numpy as np
import pytest
import mindspore as ms
import torch
from mindspore import Parameter, Tensor, nn, ops

from engine_toy import build_ms_task, build_pt_task, toy_config
from ms_models.engine import (EMA, SGD, AdamW, DynamicLossScale, TrainStep, clip_by_global_norm,
                              default_param_groups, graph_mode)
from ms_models.engine.optim import hyper_tensors
from pt_reference.engine import EMA as PtEMA
from pt_reference.engine import default_param_groups as pt_default_param_groups

ms.set_device("CPU")
ms.runtime.launch_blocking()

SHAPES = [(4, 3), (4,), (5,)]


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _problem(seed=0):
    """Initial values, 5 gradient sets and per-step per-group (2 groups) lr / momentum / wd."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(5)]
    lrs = [np.array([0.1, 0.05]) * (1 + 0.2 * k) for k in range(5)]
    moms = [np.array([0.8 + 0.02 * k, 0.9]) for k in range(5)]
    wds = np.array([1e-2, 0.0])
    return init, grads, lrs, moms, wds


class _OptStep(nn.Cell):
    def __init__(self, opt):
        super().__init__()
        self.opt = opt

    def construct(self, grads, lrs, moms, wds):
        return self.opt(grads, lrs, moms, wds)


@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adamw"])
def test_optimizer_matches_torch_over_5_steps(kind):
    init, grads, lrs, moms, wds = _problem()
    params = [Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)]
    groups = [{"params": params[:1]}, {"params": params[1:]}]
    opt = AdamW(groups, betas=(0.9, 0.999), eps=1e-8) if kind == "adamw" else SGD(groups, nesterov=kind == "sgd_nesterov")
    step = _OptStep(opt)
    tparams = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    tgroups = [{"params": tparams[:1], "weight_decay": wds[0]}, {"params": tparams[1:], "weight_decay": wds[1]}]
    if kind == "adamw":
        topt = torch.optim.AdamW(tgroups, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    else:
        topt = torch.optim.SGD(tgroups, lr=0.1, momentum=0.9, nesterov=kind == "sgd_nesterov")
    for k in range(5):
        with graph_mode():
            step(ms.mutable(tuple(Tensor(g) for g in grads[k])), *hyper_tensors(lrs[k], moms[k], wds))
        for gi, group in enumerate(topt.param_groups):
            group["lr"] = float(lrs[k][gi])
            if kind != "adamw":
                group["momentum"] = float(moms[k][gi])
        for p, g in zip(tparams, grads[k]):
            p.grad = torch.tensor(g)
        topt.step()
    for i, (p, t, a) in enumerate(zip(params, tparams, init)):
        ref = t.detach().numpy()
        diff = _rel(p.asnumpy(), ref)
        moved = float(np.abs(ref - a).max())
        print(f"{kind} p{i}: rel diff {diff:.2e}, moved {moved:.3f}")
        assert moved > 1e-2                       # the update did happen
        assert diff <= 1e-6
    # optimizer state matches too (what a checkpoint saves)
    if kind == "adamw":
        for p, t in zip(opt.exp_avg, tparams):
            assert _rel(p.asnumpy(), topt.state[t]["exp_avg"].numpy()) <= 1e-6
        for p, t in zip(opt.exp_avg_sq, tparams):
            assert _rel(p.asnumpy(), topt.state[t]["exp_avg_sq"].numpy()) <= 1e-6
        assert float(opt.step_count.asnumpy()) == 5.0
    else:
        for p, t in zip(opt.momentum_buf, tparams):
            assert _rel(p.asnumpy(), topt.state[t]["momentum_buffer"].numpy()) <= 1e-6


def test_ema_matches_numpy_and_covers_bn_statistics():
    task = build_ms_task(toy_config())
    model = task.model
    ema = EMA(model)
    names = ema.names()
    assert "bn.moving_mean" in names and "bn.moving_variance" in names
    params = {p.name: p for p in model.get_parameters()}
    rng = np.random.default_rng(1)
    ref = {n: params[n].asnumpy().astype(np.float64) for n in names}
    for d in (0.3, 0.9, 0.99):
        for n in names:
            ops.assign(params[n], Tensor(rng.standard_normal(params[n].shape).astype(np.float32)))
        with graph_mode():
            ema(Tensor(np.float32(d)))
        for n in names:
            ref[n] = d * ref[n] + (1 - d) * params[n].asnumpy()
    worst = max(_rel(s.asnumpy(), ref[n]) for n, s in zip(names, ema.shadow))
    print(f"ms EMA vs numpy: max rel diff {worst:.2e}")
    assert worst <= 1e-6
    live = {n: params[n].asnumpy().copy() for n in names}
    with ema.swapped():
        for n, s in zip(names, ema.shadow):
            np.testing.assert_array_equal(params[n].asnumpy(), s.asnumpy())
    for n in names:
        np.testing.assert_array_equal(params[n].asnumpy(), live[n])


def test_pt_ema_matches_numpy():
    torch.manual_seed(0)
    model = build_pt_task(toy_config()).model
    ema = PtEMA(model)
    assert "bn.running_var" in ema.shadow and "bn.num_batches_tracked" not in ema.shadow
    ref = {k: v.numpy().astype(np.float64) for k, v in ema.shadow.items()}
    rng = np.random.default_rng(2)
    for d in (0.3, 0.9, 0.99):
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if k in ref:
                    v.copy_(torch.from_numpy(rng.standard_normal(tuple(v.shape)).astype(np.float32)))
        ema.update(model, d)
        state = model.state_dict()
        for k in ref:
            ref[k] = d * ref[k] + (1 - d) * state[k].numpy()
    worst = max(_rel(ema.shadow[k].numpy(), ref[k]) for k in ref)
    print(f"pt EMA vs numpy: max rel diff {worst:.2e}")
    assert worst <= 1e-6


class _Clip(nn.Cell):
    def __init__(self, max_norm):
        super().__init__()
        self.max_norm = max_norm

    def construct(self, grads):
        return clip_by_global_norm(grads, self.max_norm)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_by_global_norm_matches_numpy(max_norm):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    coef = min(1.0, max_norm / (norm + 1e-6))
    with graph_mode():
        out = _Clip(max_norm)(ms.mutable(tuple(Tensor(g) for g in grads)))
    worst = max(_rel(o.asnumpy(), g * coef) for o, g in zip(out, grads))
    print(f"clip {max_norm}: global norm {norm:.4f}, coef {coef:.4f}, max rel diff {worst:.2e}")
    assert worst <= 1e-6
    if max_norm < norm:
        clipped = np.sqrt(sum((o.asnumpy().astype(np.float64) ** 2).sum() for o in out))
        assert clipped == pytest.approx(max_norm, rel=1e-5)


def test_dynamic_loss_scale_follows_ms_amp_dynamic_loss_scaler():
    ours = DynamicLossScale(init_scale=1024.0, window=3)
    ref = ms.amp.DynamicLossScaler(scale_value=1024.0, scale_factor=2, scale_window=3)
    flags = [True, True, True, False, True, True, True, True, False, False]
    for f in flags:
        with graph_mode():
            ours(Tensor(f))
        ref.adjust(Tensor(f))
        assert float(ours.scale_value.asnumpy()) == float(ref.scale_value.asnumpy())
        assert int(ours.counter.asnumpy()) == int(ref.counter.asnumpy())
    print("loss scale after", flags, "=", float(ours.scale_value.asnumpy()))


class _FlagTask:
    """Loss = cross-entropy + 0 * sqrt(flag + 0 * w.sum()): with flag 0 the value is finite but the
    gradient is NaN (0 * inf), so the loss-scaled step must skip the update."""

    def __init__(self):
        self.model = nn.Dense(3, 2)

    def forward_loss(self, model, x, y, flag):
        out = model(x)
        ce = ops.cross_entropy(out, y)
        trap = ops.sqrt(flag + 0.0 * model.weight.sum())
        return ce + 0.0 * trap, (ce,)


def _flag_step(task, scaled):
    opt = SGD(default_param_groups(task.model, 0.0), nesterov=False)
    scale = DynamicLossScale(init_scale=2.0 ** 16, window=1000) if scaled else None
    return TrainStep(task, task.model, opt, loss_scale=scale), scale


def test_loss_scaled_step_skips_non_finite_gradients_and_matches_unscaled_step():
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
    y = Tensor(np.array([0, 1, 1, 0], np.int32))
    hyper = hyper_tensors([0.5, 0.5], [0.9, 0.9], [0.0, 0.0])
    scaled_task, plain_task, control_task = _FlagTask(), _FlagTask(), _FlagTask()
    for t in (plain_task, control_task):
        for p, q in zip(t.model.get_parameters(), scaled_task.model.get_parameters()):
            ops.assign(p, q.value())
    step, scale = _flag_step(scaled_task, True)
    plain, _ = _flag_step(plain_task, False)
    control, _ = _flag_step(control_task, False)
    w0 = scaled_task.model.weight.asnumpy().copy()
    with graph_mode():
        control(*hyper, x, y, Tensor(np.float32(0.0)))
        loss, _ = step(*hyper, x, y, Tensor(np.float32(0.0)))
    assert np.isnan(control_task.model.weight.asnumpy()).all()                  # the trap gives NaN grads
    assert np.isfinite(float(loss.asnumpy()))
    np.testing.assert_array_equal(scaled_task.model.weight.asnumpy(), w0)       # skipped
    assert float(scale.scale_value.asnumpy()) == 2.0 ** 15                       # halved
    with graph_mode():
        step(*hyper, x, y, Tensor(np.float32(1.0)))
        plain(*hyper, x, y, Tensor(np.float32(1.0)))
    w1 = scaled_task.model.weight.asnumpy()
    assert np.abs(w1 - w0).max() > 1e-3
    # scaling by a power of two and unscaling is exact in fp32
    np.testing.assert_array_equal(w1, plain_task.model.weight.asnumpy())


def test_default_param_groups_split_norms_and_biases():
    msk = build_ms_task(toy_config())
    groups = default_param_groups(msk.model, 0.01)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    assert sorted(p.name for p in groups[0]["params"]) == ["conv.weight", "fc.weight"]
    assert sorted(p.name for p in groups[1]["params"]) == ["bn.beta", "bn.gamma", "fc.bias"]
    assert (groups[0]["weight_decay"], groups[1]["weight_decay"]) == (0.01, 0.0)
    model = build_pt_task(toy_config()).model
    pt_groups = pt_default_param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in pt_groups[0]["params"]) == ["conv.weight", "fc.weight"]
    assert sorted(names[id(p)] for p in pt_groups[1]["params"]) == ["bn.bias", "bn.weight", "fc.bias"]
    no_bn = default_param_groups(build_ms_task(toy_config(bn=False)).model, 0.01)
    assert sorted(p.name for p in no_bn[1]["params"]) == ["conv.bias", "fc.bias"]


def test_check_param_groups_rejects_duplicates():
    from ms_models.engine import check_param_groups
    msk = build_ms_task(toy_config())
    w = msk.model.fc.weight
    with pytest.raises(ValueError, match="fc.weight.*two param groups"):
        check_param_groups([{"name": "a", "params": [w], "weight_decay": 0.0},
                            {"name": "b", "params": [w], "weight_decay": 0.0}])
