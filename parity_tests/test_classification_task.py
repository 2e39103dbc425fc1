"""Classification task, both frameworks: same loss on the same batch and weights; ms.jit tracing."""
import numpy as np
import pytest

import mindspore as ms
import torch

from common.config import load_config
from common.data.demo_classification import demo_classification_root
from ms_models.classification import task as ms_task
from ms_models.utils.weights import load_pt_state_into
from pt_reference.classification import task as pt_task
from pt_reference.utils.weights import state_numpy as pt_state_numpy

ms.set_device("CPU")
ms.runtime.launch_blocking()


def _cfg(tmp_path_factory, *overrides):
    root = demo_classification_root(tmp_path_factory.getbasetemp() / "data", train_per_class=3, val_per_class=2,
                                    size=40)
    return load_config("configs/classification/demo.yaml",
                       [f"data.root={root}", "data.batch_size=4", "data.img_size=32", "data.workers=0", *overrides])


def _pair(cfg):
    """MindSpore and PyTorch tasks with the PyTorch initial weights copied into MindSpore."""
    torch.manual_seed(0)
    pt = pt_task.build_task(cfg)
    msk = ms_task.build_task(cfg)
    load_pt_state_into(msk.model, pt_state_numpy(pt.model))
    return msk, pt


def _check(name, got, ref, tol):
    diff = abs(got - ref)
    print(f"{name}: {got:.8f} vs {ref:.8f} |diff| {diff:.3e} (tol {tol:.1e})")
    assert diff <= tol


def test_soft_target_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 7)).astype(np.float32) * 3
    t = rng.random((5, 7)).astype(np.float32)
    t /= t.sum(1, keepdims=True)
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    ref = float(-(t * logp).sum(1).mean())
    got_ms = float(ms_task.soft_target_cross_entropy(ms.Tensor(logits), ms.Tensor(t)).asnumpy())
    got_pt = float(pt_task.soft_target_cross_entropy(torch.from_numpy(logits), torch.from_numpy(t)))
    _check("soft CE ms vs numpy", got_ms, ref, 1e-5 * abs(ref))
    _check("soft CE pt vs numpy", got_pt, ref, 1e-5 * abs(ref))


@pytest.mark.parametrize("aug", [(), ("aug.mixup_alpha=0.8", "aug.cutmix_alpha=1.0", "aug.label_smoothing=0.1")],
                         ids=["hard", "mixup_smoothing"])
def test_forward_loss_same_in_both_frameworks_and_under_jit(tmp_path_factory, aug):
    cfg = _cfg(tmp_path_factory, *aug)
    msk, pt = _pair(cfg)
    assert msk.steps_per_epoch() == pt.steps_per_epoch() == 6
    b_ms = next(msk.train_batches(0))
    b_pt = next(pt.train_batches(0))
    for a, b in zip(b_ms, b_pt):
        np.testing.assert_array_equal(a, b)                     # identical numpy batches
    images, targets = b_ms
    assert targets.dtype == (np.float32 if aug else np.int32)

    pt.model.train()
    ref = float(pt.forward_loss(pt.model, torch.from_numpy(images), torch.from_numpy(targets))[0].detach())
    msk.model.set_train(True)
    x, t = ms.Tensor(images), ms.Tensor(targets)
    loss, comps = msk.forward_loss(msk.model, x, t)
    assert len(comps) == len(msk.loss_names) == 1
    _check("forward_loss ms vs pt", float(loss.asnumpy()), ref, 1e-4 * max(1.0, abs(ref)))

    model = msk.model

    @ms.jit
    def jitted(images, targets):
        return msk.forward_loss(model, images, targets)[0]

    _check("forward_loss ms.jit vs pt", float(jitted(x, t).asnumpy()), ref, 1e-4 * max(1.0, abs(ref)))


def test_param_groups_and_evaluate_agree(tmp_path_factory):
    cfg = _cfg(tmp_path_factory)
    msk, pt = _pair(cfg)
    g_ms, g_pt = msk.param_groups(msk.model), pt.param_groups(pt.model)
    assert [g["name"] for g in g_ms] == [g["name"] for g in g_pt] == ["decay", "no_decay"]
    for a, b in zip(g_ms, g_pt):
        assert [tuple(p.shape) for p in a["params"]] == [tuple(p.shape) for p in b["params"]]
        assert a["weight_decay"] == b["weight_decay"]
    assert g_ms[0]["weight_decay"] == cfg.optim.weight_decay and g_ms[1]["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p.ndim == 2 for p in g_pt[0]["params"])
    assert all(p.ndim == 1 for p in g_pt[1]["params"])

    r_ms, r_pt = msk.evaluate(msk.model, None), pt.evaluate(pt.model, None)
    print("evaluate ms", r_ms, "pt", r_pt)
    assert r_ms == r_pt and r_ms["primary"] == "top1" and set(r_ms) == {"top1", "top5", "primary"}


def test_deit_task_with_mixup_no_decay_tokens_and_same_loss(tmp_path_factory):
    cfg = _cfg(tmp_path_factory, "model.name=deit_tiny_patch16_224", "model.kwargs.img_size=32",
               "model.drop_path_rate=0.1", "aug.mixup_alpha=0.8", "aug.cutmix_alpha=1.0", "aug.label_smoothing=0.1")
    msk, pt = _pair(cfg)
    names_pt = [n for n, p in pt.model.named_parameters() if any(p is q for q in pt.param_groups(pt.model)[1]["params"])]
    names_ms = [p.name for p in msk.param_groups(msk.model)[1]["params"]]
    assert {"pos_embed", "cls_token"} <= set(names_pt) and {"pos_embed", "cls_token"} <= set(names_ms)
    assert len(names_pt) == len(names_ms)
    images, targets = next(msk.train_batches(0))
    pt.model.eval()                                             # drop path off: a deterministic comparison
    msk.model.set_train(False)
    ref = float(pt.forward_loss(pt.model, torch.from_numpy(images), torch.from_numpy(targets))[0].detach())
    got = float(msk.forward_loss(msk.model, ms.Tensor(images), ms.Tensor(targets))[0].asnumpy())
    _check("deit_tiny forward_loss ms vs pt", got, ref, 1e-4 * max(1.0, abs(ref)))
