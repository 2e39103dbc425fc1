"""DUKD training iteration in both frameworks: the same numpy batch (zoom-in cells and masks drawn in
numpy), the same weights; losses, components, weights and Adam state after both optimizer steps."""
import numpy as np
import pytest
import mindspore as ms
import torch

from common.config import load_config
from common.train_options import TrainOptions
from ms_models.dukd import task as ms_task
from ms_models.engine.optim import build_optimizer as ms_optimizer, hyper_tensors
from ms_models.engine.trainer import graph_mode
from ms_models.utils.weights import load_pt_state_into
from parity_tests.harness import assert_all_close, assert_close, ms_state_as_pt
from pt_reference.dukd import task as pt_task
from pt_reference.engine.optim import build_optimizer as pt_optimizer
from pt_reference.utils.weights import load_numpy_state, state_numpy

STUDENT = "{num_feat: 8, num_block: 2, upscale: 2, res_scale: 0.1, img_range: 255.0}"
TEACHER = "{num_feat: 12, num_block: 2, upscale: 2, res_scale: 0.1, img_range: 255.0}"


def _cfg(*overrides):
    return load_config("configs/dukd/demo.yaml", [
        f"model.kwargs={STUDENT}", f"teacher.kwargs={TEACHER}", "teacher.allow_random=true", "dukd.method=dukd",
        "dukd.pix_weight=5.0", "dukd.n_sub=2", "dukd.zoom_out=true", "dukd.noisy_prob=0.5", "data.lr_patch=8",
        "data.batch_size=4", "data.demo_max_side=96", "data.enlarge_ratio=1", "optim.lr=1e-3", *overrides])


@pytest.fixture(scope="module")
def tasks():
    """MindSpore and PyTorch tasks on one config, with the PyTorch initial weights kept for reloads."""
    cfg = _cfg()
    torch.manual_seed(0)
    pt = pt_task.build_task(cfg)
    msk = ms_task.build_task(cfg)
    load_pt_state_into(msk.teacher, {f"teacher.{k}": v for k, v in state_numpy(pt.teacher).items()})
    return cfg, msk, pt, state_numpy(pt.model)


@pytest.mark.parametrize("inverse,graph", [("reuse", True), ("reverse", False)],
                         ids=["reuse-graph", "reverse-pynative"])
def test_dukd_iteration_matches(tasks, inverse, graph):
    """Two DUKD iterations (four optimizer steps): MindSpore (GRAPH or PyNative) against PyTorch."""
    cfg, msk, pt, init = tasks
    load_numpy_state(pt.model, init)
    load_pt_state_into(msk.model, init)
    msk.opts.aug_inverse = pt.opts.aug_inverse = inverse
    rng_state = msk.rng.bit_generator.state
    batches_ms = [b for _, b in zip(range(2), msk.train_batches(0))]
    pt.rng.bit_generator.state = rng_state
    batches_pt = [b for _, b in zip(range(2), pt.train_batches(0))]
    for bm, bp in zip(batches_ms, batches_pt):
        for a, b in zip(bm, bp):
            np.testing.assert_array_equal(a, b)                 # identical numpy batches
    lq, gt, z, masks = batches_ms[0]
    assert z.shape == (4, 2, 3, 8, 8) and masks.shape == (4, 2, 4) and 0 < masks.sum() < masks.size
    opts = TrainOptions.from_config(cfg)
    opt_pt = pt_optimizer(pt.param_groups(pt.model), opts)
    opt_ms = ms_optimizer(msk.param_groups(msk.model), opts)
    step_pt = pt.build_train_step(pt, pt.model, opt_pt)
    step_ms = msk.build_train_step(msk, msk.model, opt_ms)
    lrs, moms, wds = np.array([1e-3]), np.array([0.9]), np.array([0.0])
    pt.model.train()
    msk.model.set_train(True)
    losses_pt, losses_ms = [], []
    for b in batches_pt:
        loss, comps = step_pt(lrs, moms, wds, *[torch.from_numpy(a) for a in b])
        losses_pt.append(np.concatenate([[float(loss)], comps.numpy()]))
        with graph_mode(graph):
            loss, comps = step_ms(*hyper_tensors(lrs, moms, wds), *[ms.Tensor(a) for a in b])
        losses_ms.append(np.concatenate([[float(loss.asnumpy())], comps.asnumpy()]))
    names = ("total",) + msk.loss_names
    for it in range(2):
        for k, n in enumerate(names):
            assert_close(f"iteration {it} loss {n} ({inverse})", losses_ms[it][k], losses_pt[it][k], "loss")
    assert all(v > 0 for v in losses_pt[0][1:])
    final = state_numpy(pt.model)
    assert max(np.abs(final[k] - init[k]).max() for k in init) > 1e-4        # the student trained
    assert_all_close(f"weights after 2 iterations ({inverse}) ", ms_state_as_pt(msk.model, pt.model), final, "train")
    exp_avg_pt = {n: opt_pt.state[p]["exp_avg"].numpy() for n, p in pt.model.named_parameters()}
    exp_avg_ms = dict(zip([p.name for p in msk.model.trainable_params()], [m.asnumpy() for m in opt_ms.exp_avg]))
    assert_close(f"adam exp_avg conv_first.weight ({inverse})", exp_avg_ms["conv_first.weight"],
                 exp_avg_pt["conv_first.weight"], "train")
    assert int(opt_ms.step_count.asnumpy()) == 4 == opt_pt.state[pt.model.conv_first.weight]["step"]
