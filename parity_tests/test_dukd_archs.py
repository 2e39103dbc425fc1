"""EDSR / RCAN / SwinIR in both frameworks: eval forward and gradients of an L1 loss on shared
weights (PyTorch initialises, the converter copies), at reduced widths and depths."""
import numpy as np
import pytest
import mindspore as ms
import torch

import ms_models
import pt_reference
from ms_models.utils.weights import load_pt_state_into
from parity_tests.harness import assert_all_close, assert_close
from pt_reference.utils.weights import state_numpy

ARCHS = {
    "edsr_x3": ("edsr", dict(num_feat=16, num_block=3, upscale=3, res_scale=0.1), 10),
    "rcan_x4": ("rcan", dict(num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=4), 8),
    "swinir_x2": ("swinir", dict(upscale=2, img_size=16, window_size=4, depths=[2, 2], embed_dim=12,
                                 num_heads=[2, 3], mlp_ratio=2.0, drop_path_rate=0.0), 16),
}


def _ms_grads(net, x, target):
    net.set_train(True)
    params = net.trainable_params()

    def loss_fn(inp):
        return ms.ops.abs(net(inp) - target).mean()

    loss, grads = ms.value_and_grad(loss_fn, None, params)(x)
    return float(loss.asnumpy()), {p.name: g.asnumpy() for p, g in zip(params, grads)}


@pytest.mark.parametrize("key", list(ARCHS))
def test_arch_forward_and_grads(key):
    name, kw, size = ARCHS[key]
    torch.manual_seed(0)
    pt_net = pt_reference.create_model(name, **kw)
    ms_net = ms_models.create_model(name, **kw)
    load_pt_state_into(ms_net, state_numpy(pt_net))
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, size, size), dtype=np.float32)
    pt_net.eval()
    ms_net.set_train(False)
    ref = pt_net(torch.from_numpy(x)).detach().numpy()
    assert ref.shape == (2, 3, size * kw["upscale"], size * kw["upscale"])
    assert_close(f"{key} forward", ms_net(ms.Tensor(x)).asnumpy(), ref, "forward")
    target = rng.random(ref.shape, dtype=np.float32)
    pt_net.train()
    loss = (pt_net(torch.from_numpy(x)) - torch.from_numpy(target)).abs().mean()
    loss.backward()
    g_pt = {n: p.grad.numpy() for n, p in pt_net.named_parameters()}
    loss_ms, g_ms = _ms_grads(ms_net, ms.Tensor(x), ms.Tensor(target))
    assert_close(f"{key} L1 loss", loss_ms, float(loss.detach()), "loss")
    g_ms = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v for k, v in g_ms.items()}
    assert_all_close(f"{key} grad ", g_ms, g_pt, "grads")


def test_swinir_other_input_size_uses_the_computed_mask():
    """Inputs other than img_size build the shifted-window mask from the shape (MindSpore ops) and
    agree with torch, whose BasicSR code recomputes it in numpy."""
    name, kw, _ = ARCHS["swinir_x2"]
    torch.manual_seed(0)
    pt_net = pt_reference.create_model(name, **kw).eval()
    ms_net = ms_models.create_model(name, **kw)
    ms_net.set_train(False)
    load_pt_state_into(ms_net, state_numpy(pt_net))
    x = np.random.default_rng(2).random((1, 3, 12, 20), dtype=np.float32)
    assert_close("swinir_x2 forward 12x20", ms_net(ms.Tensor(x)).asnumpy(),
                 pt_net(torch.from_numpy(x)).detach().numpy(), "forward")
