"""PPT parity: MindSpore ``ppt_*`` against the PyTorch twin (timm + ``apply_patch``) on shared weights.

DeiT-S at 224, r=50 at blocks [3, 6, 9], batch 4, random tie-free weights (numpy-seeded, larger
than timm's init so that attention and the importance scores are far from uniform) and Gaussian
images. tau is put between the observed score variances of block 3 so that the batch mixes both
branches. Checked: policy bits, score variances, kept/merged token sets (source maps) and sizes
per compression block, identical in MindSpore, PyTorch split (official data flow) and PyTorch mask;
logits within the forward tolerance; the PyTorch decisions and logits also against the independent
numpy reference of tests/test_ppt_reference.py. Then gradients of the CE loss in train mode on a
small PPT ViT (both branches active) within the grads tolerance.
"""
import mindspore as ms
import numpy as np
import torch
import torch.nn.functional as F
from mindspore import ops

import ms_models
import pt_reference
from pt_reference.ppt import apply_patch
from parity_tests.harness import assert_all_close, assert_close, copy_pt_to_ms
from tests.test_ppt_reference import SMALL, np_ppt_forward, random_state

PPT = dict(r=50, pp_loc_list=[3, 6, 9])


def _repatch(pt, **kw):
    apply_patch(pt, **kw)
    pt.set_trace(True)
    return pt


def _pt_run(pt, x):
    with torch.no_grad():
        logits, trace = pt(torch.from_numpy(x))
    return logits.numpy(), [t.numpy() for t in trace]


def _sources(src):
    return [[sorted(np.nonzero(row)[0].tolist()) for row in img] for img in src]


def test_deit_small_224_decisions_and_logits():
    pt = pt_reference.create_model("ppt_deit_small_patch16_224", weight_init="skip", **PPT)
    sd = random_state({k: tuple(v.shape) for k, v in pt.state_dict().items()}, seed=11)
    pt.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    pt.eval()
    x = np.random.default_rng(12).standard_normal((4, 3, 224, 224)).astype(np.float32)

    _, probe = _pt_run(_repatch(pt, tau=0.0, **PPT), x)
    v3 = np.sort(probe[1])
    tau = float(np.sqrt(v3[1] * v3[2]))
    ref, ref_tr = _pt_run(_repatch(pt, tau=tau, policy_impl="split", **PPT), x)
    mask_logits, mask_tr = _pt_run(_repatch(pt, tau=tau, policy_impl="mask", **PPT), x)
    net = ms_models.create_model("ppt_deit_small_patch16_224", tau=tau, **PPT)
    copy_pt_to_ms(pt, net)
    net.set_train(False)
    net.set_trace(True)
    ms_logits, ms_tr = net(ms.Tensor(x))
    ms_tr = [t.asnumpy() for t in ms_tr]
    bits = np.stack(ref_tr[0::4])
    print(f"[ppt] tau {tau:.3e}; pool bits per block (rows) and image: {bits.astype(int).tolist()}")
    assert bits[0].any() and not bits[0].all(), "the test batch must mix pooling and pruning at block 3"
    assert [t.shape for t in ms_tr] == [t.shape for t in ref_tr] == [(4,), (4,), (4, 147, 197), (4, 147),
                                                                      (4,), (4,), (4, 97, 147), (4, 97),
                                                                      (4,), (4,), (4, 49, 97), (4, 49)]
    for k in range(3):
        pool, var, src, size = ref_tr[4 * k:4 * k + 4]
        for other, tag in ((ms_tr, "MindSpore"), (mask_tr, "PyTorch mask")):
            np.testing.assert_array_equal(other[4 * k], pool, err_msg=f"{tag} block {PPT['pp_loc_list'][k]}")
            np.testing.assert_array_equal(other[4 * k + 2], src, err_msg=f"{tag} sources")
            np.testing.assert_array_equal(other[4 * k + 3], size, err_msg=f"{tag} sizes")
        rel = float(np.abs(ms_tr[4 * k + 1] - var).max() / np.abs(var).max())
        print(f"[ppt] block {PPT['pp_loc_list'][k]} score variance {var.tolist()}: MindSpore rel diff {rel:.2e}")
        np.testing.assert_allclose(ms_tr[4 * k + 1], var, rtol=1e-4, atol=0)
    assert_close("deit_s/logits", ms_logits, ref, "forward")
    assert_close("deit_s/logits_pt_mask_vs_split", mask_logits, ref, "forward")

    img = int(np.argmax(bits[0]))  # an image that pools at block 3 and prunes later
    ref_np, np_tr = np_ppt_forward(sd, x[img:img + 1], depth=12, num_heads=6, patch_size=16, tau=tau, **PPT)
    for k in range(3):
        pool, _, src, size = ref_tr[4 * k:4 * k + 4]
        assert np_tr[0][k][0] == bool(pool[img])
        assert np_tr[0][k][1] == _sources(src[img:img + 1])[0]
        np.testing.assert_array_equal(np_tr[0][k][2], size[img])
    diff = float(np.abs(ref[img:img + 1] - ref_np).max())
    print(f"[ppt] PyTorch vs numpy float64 reference: max |logits diff| {diff:.2e}")
    assert diff <= 1e-4 * max(1.0, float(np.abs(ref_np).max()))


def test_small_vit_grads_train_mode():
    """CE-loss gradients of every parameter through both branches (train mode, no drop path)."""
    torch.manual_seed(0)
    kw = dict(SMALL, r=8, pp_loc_list=[1, 2])
    pt = pt_reference.create_model("ppt_vit_custom", tau=0.0, **kw)
    sd = random_state({k: tuple(v.shape) for k, v in pt.state_dict().items()}, seed=21)
    pt.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    pt.eval()
    x = np.random.default_rng(22).standard_normal((6, 3, 32, 32)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 0], np.int32)
    _, tr = _pt_run(_repatch(pt, tau=0.0, **{k: kw[k] for k in ("r", "pp_loc_list")}), x)
    v = np.sort(tr[1])
    tau = float(np.sqrt(v[2] * v[3]))
    _repatch(pt, tau=tau, r=8, pp_loc_list=[1, 2])
    pt.set_trace(False)
    pt.train()
    net = ms_models.create_model("ppt_vit_custom", tau=tau, **kw)
    copy_pt_to_ms(pt, net)
    net.set_train(True)

    loss_pt = F.cross_entropy(pt(torch.from_numpy(x)), torch.from_numpy(y).long())
    loss_pt.backward()
    grads_pt = {k: p.grad.numpy() for k, p in pt.named_parameters()}

    params = net.trainable_params()

    def loss_fn(images, labels):
        return ops.cross_entropy(net(images), labels)

    loss_ms, grads = ms.value_and_grad(loss_fn, None, params)(ms.Tensor(x), ms.Tensor(y))
    names = {p.name: g.asnumpy() for p, g in zip(params, grads)}
    grads_ms = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): g for k, g in names.items()}
    assert_close("small_vit/loss", loss_ms, loss_pt, "loss")
    assert_all_close("small_vit/grad/", grads_ms, grads_pt, "grads")


def test_small_distilled_vit_mixed_batch():
    """DeiT-style distillation token: CLS and DIST protected in both branches, same decisions."""
    kw = dict(SMALL, r=8, pp_loc_list=[1, 2])
    pt = pt_reference.create_model("ppt_vit_custom", distilled=True, tau=0.0, **kw)
    sd = random_state({k: tuple(v.shape) for k, v in pt.state_dict().items()}, seed=31)
    pt.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    pt.eval()
    x = np.random.default_rng(32).standard_normal((6, 3, 32, 32)).astype(np.float32)
    _, tr = _pt_run(_repatch(pt, tau=0.0, r=8, pp_loc_list=[1, 2]), x)
    v = np.sort(tr[1])
    tau = float(np.sqrt(v[2] * v[3]))
    ref, ref_tr = _pt_run(_repatch(pt, tau=tau, r=8, pp_loc_list=[1, 2]), x)
    net = ms_models.create_model("ppt_vit_custom", distilled=True, tau=tau, **kw)
    copy_pt_to_ms(pt, net)
    net.set_train(False)
    net.set_trace(True)
    logits, ms_tr = net(ms.Tensor(x))
    ms_tr = [t.asnumpy() for t in ms_tr]
    assert ref_tr[0].any() and not ref_tr[0].all()
    for k in (0, 4):
        np.testing.assert_array_equal(ms_tr[k], ref_tr[k])
        np.testing.assert_array_equal(ms_tr[k + 2], ref_tr[k + 2])
        np.testing.assert_array_equal(ms_tr[k + 3], ref_tr[k + 3])
        assert (ref_tr[k + 2][:, 0, 0] == 1).all() and (ref_tr[k + 2][:, 1, 1] == 1).all()  # CLS, DIST stay first
        assert (ref_tr[k + 3][:, :2] == 1).all()                                          # and alone
    assert_close("small_distilled/logits", logits, ref, "forward")
