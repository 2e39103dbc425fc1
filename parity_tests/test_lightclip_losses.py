"""LightCLIP losses in both frameworks against float64 NumPy formulas (spec section 3), their
gradients, the alpha(t) schedule and the Hungarian matching (checked against brute force)."""
import itertools
import math

import mindspore as ms
import numpy as np
import pytest
import torch

from common.lightclip_ops import real_word_mask, soft_label_alpha, token_matching
from harness import assert_close
from ms_models.lightclip import losses as msl
from pt_reference.lightclip import losses as ptl


def _norm(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_soft_infonce(img, txt, scale, alpha, mode, tau):
    sim = _norm(img) @ _norm(txt).T
    n = len(sim)
    total = 0.0
    for s in (sim, sim.T):
        if mode == "uniform":
            off = (1 - np.eye(n)) / (n - 1)
        else:
            z = np.where(np.eye(n, dtype=bool), -np.inf, s / tau)
            off = np.exp(_log_softmax(z))
        y = (1 - alpha) * np.eye(n) + alpha * off
        total += -(y * _log_softmax(scale * s)).sum(1).mean()
    return total / 2


def np_token_loss(words, patches, match, mode, tau):
    sim = np.einsum("bld,bmd->blm", _norm(words), _norm(patches))
    cnt = max(match.sum(), 1.0)
    if mode == "cos":
        return (match * (1 - sim)).sum() / cnt
    return -(match * _log_softmax(sim / tau)).sum() / cnt


def np_mlm(logits, labels):
    logp = _log_softmax(np.asarray(logits, np.float64))
    b, l = np.nonzero(labels > 0)
    return -logp[b, l, labels[b, l]].mean()


def _grads_ms(fn, args):
    return ms.grad(fn, grad_position=tuple(range(len(args))))(*args)


def _grads_pt(fn, args):
    ts = [a.requires_grad_(True) for a in args]
    fn(*ts).backward()
    return [t.grad for t in ts]


def test_alpha_schedule_is_pure_and_shaped():
    assert soft_label_alpha(0, 100, 0.2) == 0.0
    assert soft_label_alpha(50, 100, 0.2) == pytest.approx(0.1, abs=1e-12)
    assert soft_label_alpha(250, 100, 0.2) == pytest.approx(0.2, abs=1e-12)
    assert soft_label_alpha(25, 100, 0.2, "cosine") == pytest.approx(0.2 * (1 - math.cos(math.pi / 4)) / 2)
    assert soft_label_alpha(3, 100, 0.15, "constant") == 0.15
    with pytest.raises(ValueError, match="schedule"):
        soft_label_alpha(1, 10, 0.1, "step")


@pytest.mark.parametrize("mode", ["uniform", "similarity"])
def test_soft_infonce_values_and_grads(mode):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((6, 8)).astype(np.float32)
    txt = rng.standard_normal((6, 8)).astype(np.float32)
    scale, alpha, tau = 14.0, 0.17, 0.2
    ref = np_soft_infonce(img, txt, scale, alpha, mode, tau)
    ref0 = np_soft_infonce(img, txt, scale, 0.0, mode, tau)
    assert abs(ref - ref0) > 1e-3  # softening changes the loss

    def f_ms(a, b):
        return msl.soft_infonce_loss(a, b, ms.Tensor(scale), ms.Tensor(alpha), mode, tau)

    def f_pt(a, b):
        return ptl.soft_infonce_loss(a, b, torch.tensor(scale), torch.tensor(alpha), mode, tau)

    got_ms = f_ms(ms.Tensor(img), ms.Tensor(txt))
    got_pt = f_pt(torch.from_numpy(img), torch.from_numpy(txt))
    assert_close(f"soft_infonce_{mode}", got_ms, got_pt, "loss")
    assert abs(float(got_pt) - ref) <= 1e-5 * abs(ref)
    g_ms = _grads_ms(f_ms, (ms.Tensor(img), ms.Tensor(txt)))
    g_pt = _grads_pt(f_pt, [torch.from_numpy(img.copy()), torch.from_numpy(txt.copy())])
    for name, a, b in zip(("img", "txt"), g_ms, g_pt):
        assert_close(f"soft_infonce_{mode}_grad_{name}", a, b, "grads")
    # the target distribution is a stop-gradient: finite difference of the float64 formula in img
    eps = 1e-6
    d = np.zeros_like(img, np.float64)
    d[2, 3] = eps
    fd = (np_soft_infonce(img + d, txt, scale, alpha, mode, tau) -
          np_soft_infonce(img - d, txt, scale, alpha, mode, tau)) / (2 * eps)
    if mode == "uniform":
        assert abs(float(g_pt[0][2, 3]) - fd) < 1e-4


def test_matching_equals_brute_force_and_relaxation():
    rng = np.random.default_rng(1)
    sim = rng.uniform(-1, 1, (3, 5, 4))
    ids = np.array([[49406, 10, 11, 49407, 0], [49406, 10, 11, 12, 49407], [49406, 7, 8, 9, 10]])
    mask = real_word_mask(ids)
    match = token_matching(sim, mask)
    for b in range(3):  # 2, 3 and 4 words against 4 patches: brute force over all injections
        words = np.flatnonzero(mask[b])
        best = max(itertools.permutations(range(4), len(words)),
                   key=lambda perm: sum(sim[b, w, q] for w, q in zip(words, perm)))
        expect = np.zeros((5, 4), np.float32)
        expect[words, list(best)] = 1
        np.testing.assert_array_equal(match[b], expect)
        assert match[b].sum() == len(words)
    relaxed = token_matching(sim, mask, threshold=0.0)
    kept = (match * sim) >= 0
    np.testing.assert_array_equal(relaxed, match * kept)


@pytest.mark.parametrize("mode", ["cos", "nce"])
def test_token_alignment_values_and_grads(mode):
    rng = np.random.default_rng(2)
    words = rng.standard_normal((3, 6, 8)).astype(np.float32)
    patches = rng.standard_normal((3, 4, 8)).astype(np.float32)
    ids = np.array([[49406, 5, 6, 7, 49407, 0]] * 2 + [[49406, 5, 6, 7, 8, 49407]])
    sim = np.einsum("bld,bmd->blm", _norm(words), _norm(patches))
    match = token_matching(sim, real_word_mask(ids))
    # the same indices from the framework similarities
    sim_ms = msl.token_similarity(ms.Tensor(words), ms.Tensor(patches)).asnumpy()
    sim_pt = ptl.token_similarity(torch.from_numpy(words), torch.from_numpy(patches)).numpy()
    np.testing.assert_array_equal(token_matching(sim_ms, real_word_mask(ids)), match)
    np.testing.assert_array_equal(token_matching(sim_pt, real_word_mask(ids)), match)
    ref = np_token_loss(words, patches, match, mode, 0.1)

    def f_ms(a, b):
        return msl.token_alignment_loss(a, b, ms.Tensor(match), mode, 0.1)

    def f_pt(a, b):
        return ptl.token_alignment_loss(a, b, torch.from_numpy(match), mode, 0.1)

    got_pt = f_pt(torch.from_numpy(words), torch.from_numpy(patches))
    assert_close(f"token_{mode}", f_ms(ms.Tensor(words), ms.Tensor(patches)), got_pt, "loss")
    assert abs(float(got_pt) - ref) <= 1e-5 * abs(ref)
    g_ms = _grads_ms(f_ms, (ms.Tensor(words), ms.Tensor(patches)))
    g_pt = _grads_pt(f_pt, [torch.from_numpy(words.copy()), torch.from_numpy(patches.copy())])
    for name, a, b in zip(("words", "patches"), g_ms, g_pt):
        assert_close(f"token_{mode}_grad_{name}", a, b, "grads")
    unmatched = real_word_mask(ids) == 0
    assert np.abs(g_pt[0].numpy()[unmatched]).max() == 0  # SOT/EOT/pad get no gradient
    if mode == "cos":
        assert np.abs(g_pt[1].numpy()).sum() > 0


def test_mlm_loss_values_and_grads():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 5, 11)).astype(np.float32)
    labels = np.array([[0, 3, 0, 7, 0], [0, 0, 10, 0, 0]], np.int64)
    ref = np_mlm(logits, labels)

    def f_ms(z):
        return msl.mlm_loss(z, ms.Tensor(labels))

    def f_pt(z):
        return ptl.mlm_loss(z, torch.from_numpy(labels))

    got_pt = f_pt(torch.from_numpy(logits))
    assert_close("mlm", f_ms(ms.Tensor(logits)), got_pt, "loss")
    assert abs(float(got_pt) - ref) <= 1e-5 * abs(ref)
    g_ms = _grads_ms(f_ms, (ms.Tensor(logits),))
    g_pt = _grads_pt(f_pt, [torch.from_numpy(logits.copy())])
    g_ms = g_ms[0] if isinstance(g_ms, tuple) else g_ms
    assert_close("mlm_grad_logits", g_ms, g_pt[0], "grads")
    assert np.abs(g_pt[0].numpy()[0, 0]).max() == 0
