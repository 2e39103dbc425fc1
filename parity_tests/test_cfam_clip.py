"""CLIP encoders: OpenAI names load strictly (PyTorch twin vs the official ``clip/model.py`` shipped in
clip-anytorch, and the generic conversion to MindSpore), forward and gradient parity of both towers.

The official module is loaded from its file (``import clip`` needs pkg_resources); it is the
independent reference for the PyTorch twin, which in turn is the reference for MindSpore.
"""
import importlib.util
import os

import mindspore as ms
import numpy as np
import torch

from common.weights import convert_state_dict
from common.weights.openai_clip import prepare_clip_state
from harness import assert_all_close, assert_close
from ms_models.backbones import clip as ms_clip
from ms_models.utils.weights import load_pt_state_into
from pt_reference.backbones import clip as pt_clip
from pt_reference.utils.weights import state_numpy as pt_numpy

SMALL = dict(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
             context_length=16, vocab_size=600, transformer_width=32, transformer_heads=4, transformer_layers=2)


def official_clip_module():
    folder = list(importlib.util.find_spec("clip").submodule_search_locations)[0]
    spec = importlib.util.spec_from_file_location("openai_clip_model", os.path.join(folder, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _official(kw):
    return official_clip_module().CLIP(kw["embed_dim"], kw["image_resolution"], kw["vision_layers"],
                                       kw["vision_width"], kw["vision_patch_size"], kw["context_length"],
                                       kw["vocab_size"], kw["transformer_width"], kw["transformer_heads"],
                                       kw["transformer_layers"]).float().eval()


def _text_ids(rng, batch, length, vocab):
    """Rows [SOT, words..., EOT, 0...] with EOT = vocab - 1 the largest id (argmax pooling)."""
    ids = np.zeros((batch, length), np.int64)
    for b in range(batch):
        n = int(rng.integers(2, length - 1))
        ids[b, 0] = vocab - 2
        ids[b, 1:n] = rng.integers(1, vocab - 2, n - 1)
        ids[b, n] = vocab - 1
    return ids


def test_official_checkpoint_loads_strictly_and_matches_the_pytorch_twin():
    torch.manual_seed(0)
    ref = _official(SMALL)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    twin = pt_clip.CLIP(**SMALL).eval()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((3, 3, 32, 32)).astype(np.float32))
    t = torch.from_numpy(_text_ids(rng, 3, 16, 600))
    with torch.no_grad():
        diff_i = (ref.encode_image(x) - twin.encode_image(x)).abs().max().item()
        diff_t = (ref.encode_text(t) - twin.encode_text(t)).abs().max().item()
        logits_ref, logits_twin = ref(x, t)[0], twin(x, t)[0]
    print(f"official vs twin: image {diff_i:.2e}, text {diff_t:.2e}")
    assert diff_i < 1e-5 and diff_t < 1e-5
    assert torch.allclose(logits_ref, logits_twin, atol=1e-4)


def test_vit_b16_384x128_official_names_convert_to_both_frameworks():
    """ViT-B/16 widths, vocabulary and tables (one block per tower to keep the test fast; the block
    names repeat per layer): official 224/77 checkpoint -> 24x8 grid and 168 text positions ->
    strict PyTorch load and strict MindSpore conversion (every key, every shape)."""
    torch.manual_seed(0)
    ref = official_clip_module().CLIP(512, 224, 1, 768, 16, 77, 49408, 512, 8, 1)
    state = {k: v.float().numpy() for k, v in ref.state_dict().items()}
    del ref
    prepared = prepare_clip_state(state, grid_hw=(24, 8), context_length=168)
    assert prepared["visual.positional_embedding"].shape == (1 + 24 * 8, 768)
    assert prepared["positional_embedding"].shape == (168, 512)
    twin = pt_clip.clip_vit_b16(image_resolution=(384, 128), context_length=168, vision_layers=1,
                                transformer_layers=1)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in prepared.items()}, strict=True)
    shapes = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    del twin
    net = ms_clip.clip_vit_b16(image_resolution=(384, 128), context_length=168, vision_layers=1,
                               transformer_layers=1)
    targets = {k: tuple(p.shape) for k, p in net.parameters_dict().items()}
    converted = convert_state_dict(prepared, targets, "pt2ms")
    assert set(converted) == set(targets) and len(targets) == len(shapes) == len(prepared)
    assert "token_embedding.embedding_table" in targets and "visual.ln_pre.gamma" in targets
    eps = {c.epsilon for _, c in net.cells_and_names() if isinstance(c, ms.nn.LayerNorm)}
    assert eps == {1e-5}


def _pair(kw, seed=0):
    torch.manual_seed(seed)
    pt = pt_clip.CLIP(**kw)
    net = ms_clip.CLIP(**kw)
    load_pt_state_into(net, pt_numpy(pt))
    return net, pt


def test_encoders_forward_parity_rectangular_input():
    kw = dict(SMALL, image_resolution=(48, 16))
    net, pt = _pair(kw)
    pt.eval()
    net.set_train(False)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 48, 16)).astype(np.float32)
    t = _text_ids(rng, 2, 16, 600)
    with torch.no_grad():
        ref_img = pt.forward_tokens_image(torch.from_numpy(x)).numpy()
        ref_txt = pt.forward_tokens(torch.from_numpy(t)).numpy()
        ref_glob = pt.encode_text(torch.from_numpy(t)).numpy()
    assert_close("clip image tokens (48x16)", net.forward_tokens_image(ms.Tensor(x)), ref_img, "forward")
    assert_close("clip text tokens", net.forward_tokens(ms.Tensor(t.astype(np.int32))), ref_txt, "forward")
    assert_close("clip text EOT feature", net.encode_text(ms.Tensor(t.astype(np.int32))), ref_glob, "forward")
    # a shorter input than the context uses the first positions and the top-left causal block
    assert_close("clip text tokens, 9 of 16 slots", net.forward_tokens(ms.Tensor(t[:, :9].astype(np.int32))),
                 pt.forward_tokens(torch.from_numpy(t[:, :9])).detach().numpy(), "forward")


def test_encoders_gradient_parity():
    net, pt = _pair(SMALL, seed=3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    t = _text_ids(rng, 3, 16, 600)
    w = rng.standard_normal((3, 32)).astype(np.float32)

    out = (pt.encode_image(torch.from_numpy(x)) * torch.from_numpy(w)).sum() + \
        (pt.encode_text(torch.from_numpy(t)) ** 2).sum()
    pt.zero_grad()
    out.backward()
    ref = {k: p.grad.numpy() for k, p in pt.named_parameters() if k != "logit_scale"}

    params = [p for p in net.trainable_params() if p.name != "logit_scale"]

    def loss_fn(x, t, w):
        return (net.encode_image(x) * w).sum() + (net.encode_text(t) ** 2).sum()

    loss, grads = ms.value_and_grad(loss_fn, None, params)(ms.Tensor(x), ms.Tensor(t.astype(np.int32)), ms.Tensor(w))
    assert_close("clip encoders scalar", loss, out.detach().numpy(), "loss")
    got = {p.name: g.asnumpy() for p, g in zip(params, grads)}
    got_pt = convert_state_dict(got, {k: v.shape for k, v in ref.items()}, "ms2pt")
    assert_all_close("clip grad ", got_pt, ref, "grads")
    assert all(np.abs(v).max() > 0 for v in ref.values())
