"""IFT parity, MindSpore vs PyTorch on shared weights: FGPS indices (exact: identical, and equal to a
numpy stable top-k; lsh: identical), SCF forward and gradients, the whole network's forward, loss
and gradients (exact backend; the lsh and window-only networks: identical indices and forward), and
5 training steps through both engines."""
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch

from common.config import load_config
from common.runlog import read_jsonl
from harness import assert_all_close, assert_close, ms_state_as_pt
from ms_models.engine import Trainer as MsTrainer
from ms_models.ift import FGPS as MsFGPS, IFT as MsIFT, SelfCrossFusion as MsSCF, mu_l1_loss as ms_loss
from ms_models.ift.task import build_task as build_ms_task
from ms_models.utils.weights import load_pt_state_into
from pt_reference.engine import Trainer as PtTrainer
from pt_reference.ift import FGPS as PtFGPS, IFT as PtIFT, SelfCrossFusion as PtSCF, mu_l1_loss as pt_loss
from pt_reference.ift.task import build_task as build_pt_task
from pt_reference.utils.weights import state_numpy as pt_numpy

SMALL = dict(embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, mlp_ratio=2.0, drop_path_rate=0.0,
             patch_size=4, k=2, scf_heads=2, n_hashes=2, n_buckets=4, chunk_size=8)


def _numpy_stable_topk(q, s, k):
    qn = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-6)
    sn = s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-6)
    sim = np.einsum("bnd,bmd->bnm", qn, sn)
    return np.argsort(-sim, axis=-1, kind="stable")[..., :k]


def test_fgps_exact_indices_identical_and_equal_to_numpy():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 64, 48)).astype(np.float32)
    s = rng.standard_normal((2, 64, 48)).astype(np.float32)
    s[:, 7] = s[:, 3]          # exact ties: duplicated supporting tokens must resolve to the lower index
    s[:, 40] = s[:, 3]
    q[:, 5] = s[:, 3]
    got_ms = MsFGPS(3, "exact")(ms.Tensor(q), ms.Tensor(s)).asnumpy()
    got_pt = PtFGPS(3, "exact")(torch.from_numpy(q), torch.from_numpy(s)).numpy()
    ref = _numpy_stable_topk(q.astype(np.float64), s.astype(np.float64), 3)
    np.testing.assert_array_equal(got_ms, got_pt)
    np.testing.assert_array_equal(got_ms, ref)
    np.testing.assert_array_equal(got_ms[:, 5], [[3, 7, 40], [3, 7, 40]])


def test_fgps_lsh_indices_identical_and_valid():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 64, 48)).astype(np.float32)
    s = (q[:, ::-1] + 0.1 * rng.standard_normal((2, 64, 48))).astype(np.float32)   # true match of i: 63 - i
    kw = dict(k=2, backend="lsh", dim=48, n_hashes=4, n_buckets=8, chunk_size=16, seed=3)
    got_ms = MsFGPS(**kw)(ms.Tensor(q), ms.Tensor(s)).asnumpy()
    got_pt = PtFGPS(**kw)(torch.from_numpy(q), torch.from_numpy(s)).numpy()
    np.testing.assert_array_equal(got_ms, got_pt)
    assert got_ms.shape == (2, 64, 2) and got_ms.min() >= 0 and got_ms.max() < 64
    assert (got_ms[:, :, 0] != got_ms[:, :, 1]).all()                 # de-duplicated candidates
    recall = float((got_ms[:, :, 0] == 63 - np.arange(64)).mean())
    print(f"lsh top-1 recall of the true match: {recall:.3f}")
    assert recall >= 0.8


def test_scf_forward_and_grads():
    torch.manual_seed(0)
    pt = PtSCF(8, 2, 4)
    msn = MsSCF(8, 2, 4)
    load_pt_state_into(msn, pt_numpy(pt))
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, 8, 8, 12)).astype(np.float32)
    sup = rng.standard_normal((2, 8, 8, 12)).astype(np.float32)
    idx = rng.integers(0, 5, (2, 6, 3)).astype(np.int32)     # patch 5 (rows 4-7, cols 8-11) never matched
    w = rng.standard_normal((2, 8, 8, 12)).astype(np.float32)

    r_pt, s_pt = torch.tensor(ref, requires_grad=True), torch.tensor(sup, requires_grad=True)
    out_pt = pt(r_pt, s_pt, torch.from_numpy(idx).long())
    (out_pt * torch.from_numpy(w)).sum().backward()

    def f(r, s):
        return (msn(r, s, ms.Tensor(idx)) * ms.Tensor(w)).sum()
    out_ms = msn(ms.Tensor(ref), ms.Tensor(sup), ms.Tensor(idx))
    params = msn.trainable_params()
    grad_fn = ms.value_and_grad(f, (0, 1), params)
    _, (g_in, g_par) = grad_fn(ms.Tensor(ref), ms.Tensor(sup))
    assert_close("scf forward", out_ms, out_pt, "forward")
    assert_close("scf d ref", g_in[0], r_pt.grad, "grads")
    assert_close("scf d sup", g_in[1], s_pt.grad, "grads")
    pt_grads = dict(pt.named_parameters())
    ms_to_pt = {p.name: p.name.replace(".gamma", ".weight").replace(".beta", ".bias") for p in params}
    assert_all_close("scf grad ", {ms_to_pt[p.name]: g for p, g in zip(params, g_par)},
                     {k: v.grad for k, v in pt_grads.items()}, "grads")
    assert float(np.abs(s_pt.grad.numpy()[:, :, 4:, 8:]).max()) == 0.0   # an unmatched patch gets no gradient
    assert float(np.abs(s_pt.grad.numpy()[:, :, :4, :4]).max()) > 0.0


def _pair(**kw):
    torch.manual_seed(0)
    pt = PtIFT(**{**SMALL, **kw})
    msn = MsIFT(**{**SMALL, **kw})
    load_pt_state_into(msn, pt_numpy(pt))
    return msn, pt


def _inputs(seed=0, size=16):
    rng = np.random.default_rng(seed)
    xs = [rng.random((2, 6, size, size)).astype(np.float32) for _ in range(3)]
    label = rng.random((2, 3, size, size)).astype(np.float32)
    return xs, label


def test_network_forward_and_grads():
    msn, pt = _pair(fgps_backend="exact")
    xs, label = _inputs()
    msn.set_train(True)
    pt.train()
    out_pt = pt(*[torch.from_numpy(x) for x in xs])
    loss_pt = pt_loss(out_pt, torch.from_numpy(label))
    loss_pt.backward()

    params = msn.trainable_params()

    def f(*a):
        return ms_loss(msn(*a[:3]), a[3])
    loss_ms, grads = ms.value_and_grad(f, None, params)(*[ms.Tensor(x) for x in xs], ms.Tensor(label))
    out_ms = msn(*[ms.Tensor(x) for x in xs])
    assert_close("ift[exact] forward", out_ms, out_pt, "forward")
    assert_close("ift[exact] loss", loss_ms, loss_pt, "loss")
    names = {n: p for n, p in pt.named_parameters()}
    ms_to_pt = {p.name: p.name.replace(".gamma", ".weight").replace(".beta", ".bias") for p in params}
    assert set(ms_to_pt.values()) == set(names)
    assert_all_close("ift[exact] grad ", {ms_to_pt[p.name]: g for p, g in zip(params, grads)},
                     {k: v.grad for k, v in names.items()}, "grads")
    assert float(names["scf_1.cross_attn.kv.weight"].grad.abs().max()) > 0


@pytest.mark.parametrize("backend", ["lsh", "none"])
def test_network_indices_and_forward_other_backends(backend):
    msn, pt = _pair(fgps_backend=backend)
    msn.set_train(False)
    pt.eval()
    xs, _ = _inputs(1)
    i_ms = [i.asnumpy() for i in msn.match(*[ms.Tensor(x) for x in xs])]
    i_pt = [i.numpy() for i in pt.match(*[torch.from_numpy(x) for x in xs])]
    for a, b in zip(i_ms, i_pt):
        np.testing.assert_array_equal(a, b)
    with torch.no_grad():
        out_pt = pt(*[torch.from_numpy(x) for x in xs])
    assert_close(f"ift[{backend}] forward", msn(*[ms.Tensor(x) for x in xs]), out_pt, "forward")


TRAIN_OVERRIDES = [
    "model.embed_dim=8", "model.depths=[2]", "model.num_heads=[2]", "model.window_size=4", "model.patch_size=4",
    "model.k=2", "model.scf_heads=2", "model.drop_path_rate=0.0", "model.fgps_backend=exact",
    "data.batch_size=2", "data.demo_crop=16", "data.demo_val_size=16", "data.demo_val_per_photo=1",
    "data.demo_steps_per_epoch=5", "train.epochs=1", "train.max_steps=5", "train.graph_mode=false",
    "train.log_interval=0", "optim.lr=0.002", "schedule.name=constant", "eval.tile=16",
]


def test_five_training_steps_match(tmp_path):
    cfg = load_config("configs/ift/demo.yaml", TRAIN_OVERRIDES)
    torch.manual_seed(0)
    ptk = build_pt_task(cfg)
    msk = build_ms_task(cfg)
    load_pt_state_into(msk.model, pt_numpy(ptk.model))
    init = pt_numpy(ptk.model)
    for a, b in zip(next(iter(msk.train_batches(0))), next(iter(ptk.train_batches(0)))):
        np.testing.assert_array_equal(a, b)
    ms_final = MsTrainer(msk, cfg, tmp_path / "ms").fit()
    pt_final = PtTrainer(ptk, cfg, tmp_path / "pt").fit()
    curves = [np.array([r["loss"] for r in read_jsonl(Path(tmp_path / d) / "metrics.jsonl") if "loss" in r])
              for d in ("ms", "pt")]
    assert len(curves[0]) == len(curves[1]) == 5
    assert_close("train loss curve", curves[0], curves[1], "train")
    pt_w = pt_numpy(ptk.model)
    ms_w = ms_state_as_pt(msk.model, ptk.model)
    assert_all_close("train weight ", ms_w, pt_w, "train")
    assert_close("train final psnr_mu", ms_final["psnr_mu"], pt_final["psnr_mu"], "train")
    moved = max(float(np.abs(pt_w[k] - v).max()) for k, v in init.items())
    assert moved > 1e-3
