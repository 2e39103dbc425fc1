"""OFA-KD branch projectors, MindSpore vs PyTorch on shared weights: forward and gradients for every
student family (CNN stages 1-4; ViT/DeiT tokens with a class token; Mixer/ResMLP tokens without;
Swin stage 1 with three merges and stage 4 with none).  The PyTorch twin is built and initialised
as the official code (``init_weights``) and copied to MindSpore strictly.  CNN projectors run in train
mode (BatchNorm on the batch) with MindSpore's ReLU decisions replayed in torch (near-ties only).
Gradients: every projector parameter and the input feature, of ``sum(logits * w)`` with fixed w.
"""
import mindspore as ms
import numpy as np
import pytest
import torch

from common.weights import convert_state_dict
from ms_models.ofakd import build_projector as ms_build
from ms_models.ofakd.projectors import PatchMerging as MsPatchMerging
from parity_tests.harness import ClampDecisions, assert_all_close, assert_close, copy_pt_to_ms
from pt_reference.ofakd import build_projector as pt_build

K = 10


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# name -> (stage, feature shape, student dim D_s, teacher dim D_t, prefix tokens)
CASES = {
    "cnn_stage1": (1, (8, 16, 16), 24, 40, 0),
    "cnn_stage3": (3, (32, 4, 4), 24, 40, 0),
    "cnn_stage4": (4, (48, 2, 2), 48, 40, 0),
    "vit_stage1_cls": (1, (197, 32), 32, 64, 1),
    "vit_stage4_cls": (4, (197, 32), 32, 64, 1),
    "mixer_stage2": (2, (196, 24), 24, 64, 0),
    "swin_stage1": (1, (3136, 8), 32, 64, 0),
    "swin_stage4": (4, (49, 64), 64, 32, 0),
    "swin_small_grid_width_change": (2, (16, 16), 48, 32, 0),  # no merge, Linear 16 -> 48 (deviation)
}


@pytest.mark.parametrize("case", list(CASES))
def test_ofakd_projector_forward_and_grads(case):
    stage, shape, ds, dt, tokens = CASES[case]
    torch.manual_seed(0)
    pt = pt_build(stage, shape, ds, dt, K, tokens)
    net = ms_build(stage, shape, ds, dt, K, tokens)
    copy_pt_to_ms(pt, net)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4,) + shape).astype(np.float32)
    w = rng.standard_normal((4, K)).astype(np.float32)
    cnn = len(shape) == 3
    pt.train(cnn)
    net.set_train(cnn)
    clamps = ClampDecisions(net, pt) if cnn else None

    params = net.trainable_params()
    grad_fn = ms.value_and_grad(lambda a: (net(a) * ms.Tensor(w)).sum(), 0, params, has_aux=False)
    if clamps:
        clamps.begin_ms()
    out_ms = net(ms.Tensor(x))
    _, (gx_ms, g_ms) = grad_fn(ms.Tensor(x))
    if clamps:
        clamps.end_ms()
        clamps.forwards[0] = {k: v[:1] for k, v in clamps.forwards[0].items()}  # one replayed forward
        clamps.begin_pt(0)
    xt = torch.from_numpy(x).requires_grad_(True)
    out_pt = pt(xt)
    (out_pt * torch.from_numpy(w)).sum().backward()
    if clamps:
        clamps.end_pt()
        clamps.stop()
        assert clamps.far_flips == 0, f"{clamps.far_flips} ReLU decisions differ away from zero"
    assert out_pt.shape == (4, K)
    assert_close(f"{case}/logits", out_ms, out_pt, "forward")
    assert_close(f"{case}/grad/input", gx_ms, xt.grad, "grads")
    shapes = {k: tuple(p.shape) for k, p in pt.named_parameters()}
    ms_grads = convert_state_dict({p.name: g.asnumpy() for p, g in zip(params, g_ms)}, shapes, "ms2pt")
    assert_all_close(f"{case}/grad/", ms_grads, {k: p.grad.numpy() for k, p in pt.named_parameters()}, "grads")


def test_ofakd_projector_structure_follows_the_spec():
    """Counts from the spec: ResNet18 stage 1 at 224 px 64 -> 128 -> 256 -> D over 56 -> 7; token grids
    56 / 28 / 14 / 7 get 3 / 2 / 1 / 0 merges (GELU on all but the last of several); max(4 - s, 1) blocks."""
    cnn = pt_build(1, (64, 56, 56), 512, 768, 1000)
    chans = [(m.op[0].in_channels, m.op[5].out_channels) for m in list(cnn)[:3]]
    assert chans == [(64, 128), (128, 256), (256, 768)]
    ms_cnn = ms_build(1, (64, 56, 56), 512, 768, 1000)
    assert [p.shape for p in ms_cnn.trainable_params()][-2:] == [(1000, 768), (1000,)]
    for grid, merges in ((56, 3), (28, 2), (14, 1), (7, 0)):
        for stage in (1, 4):
            proj = pt_build(stage, (grid * grid + 1, 96), 192, 512, 100, token_num=1)
            mergers = list(proj[0].fn) if merges else []
            assert len(mergers) == merges
            acts = [type(m.act).__name__ for m in mergers]
            assert acts == (["GELU"] if merges == 1 else ["GELU"] * (merges - 1) + ["Identity"] if merges else [])
            assert len(proj[1]) == max(4 - stage, 1)
            assert proj[1][0].norm1.eps == 1e-5 and proj[1][0].attn.qkv.bias is None


def test_ofakd_patch_merging_concatenation_order():
    """Merged token (i, j) = [x(2i, 2j), x(2i+1, 2j), x(2i, 2j+1), x(2i+1, 2j+1)] before the norm: checked
    on a ramp with identity norm/reduction weights in MindSpore against explicit numpy indexing."""
    h = w = 4
    c = 2
    x = np.arange(h * w * c, dtype=np.float32).reshape(1, h * w, c)
    grid = x.reshape(h, w, c)
    expect = np.stack([np.concatenate([grid[2 * i, 2 * j], grid[2 * i + 1, 2 * j], grid[2 * i, 2 * j + 1],
                                       grid[2 * i + 1, 2 * j + 1]]) for i in range(2) for j in range(2)])
    merge = MsPatchMerging((h, w), c, 4 * c, act=False)
    merge.reduction.weight.set_data(ms.Tensor(np.eye(4 * c, dtype=np.float32)))
    normed = (expect - expect.mean(1, keepdims=True)) / np.sqrt(expect.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(merge(ms.Tensor(x)).asnumpy()[0], normed, rtol=1e-5, atol=1e-5)
