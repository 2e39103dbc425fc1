"""Species196 parity, levels 1-3: FixMatch loss and its input gradients, MAE forward, loss and
parameter gradients; each also checked against an independent numpy computation."""
import numpy as np
import pytest

import mindspore as ms
import torch

from harness import assert_all_close, assert_close
from common.data.species196_augment import mae_masks
from common.weights import convert_state_dict
from ms_models.species196.fixmatch import fixmatch_loss as ms_fixmatch
from ms_models.species196.mae import MaskedAutoencoderViT as MsMAE, sincos_pos_embed
from ms_models.utils.weights import load_pt_state_into
from pt_reference.species196.fixmatch import fixmatch_loss as pt_fixmatch
from pt_reference.species196.mae import MaskedAutoencoderViT as PtMAE
from pt_reference.utils.weights import target_shapes


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _fixmatch_inputs(seed=0):
    rng = np.random.default_rng(seed)
    lx = rng.normal(size=(4, 6)).astype(np.float32)
    y = rng.integers(0, 6, 4).astype(np.int32)
    lw = rng.normal(size=(12, 6)).astype(np.float32)
    lw[::2, :] *= 0.2                                         # half the rows: max prob ~0.2, far below tau
    lw[np.arange(1, 12, 2), [0, 3, 5, 1, 2, 4]] += 6.0        # the other half: max prob > 0.9, far above
    ls = rng.normal(size=(12, 6)).astype(np.float32)
    return lx, y, lw, ls


def test_fixmatch_loss_and_grads_match_numpy_and_torch():
    lx, y, lw, ls = _fixmatch_inputs()
    tau, lam, temp = 0.8, 1.5, 1.0
    q = np.exp(_log_softmax(lw.astype(np.float64) / temp))
    mask = (q.max(1) >= tau).astype(np.float64)
    assert mask.sum() == 6 and np.abs(q.max(1) - tau).min() > 0.01   # no near-ties at the threshold
    sup = -_log_softmax(lx.astype(np.float64))[np.arange(4), y].mean()
    unsup = (-_log_softmax(ls.astype(np.float64))[np.arange(12), q.argmax(1)] * mask).mean()
    ref = np.array([sup + lam * unsup, sup, unsup, mask.mean()])

    def ms_fn(a, b, c):
        return ms_fixmatch(a, ms.Tensor(y), b, c, tau, lam, temp)

    outs_ms = ms_fn(ms.Tensor(lx), ms.Tensor(lw), ms.Tensor(ls))
    grads_ms = ms.grad(lambda a, b, c: ms_fn(a, b, c)[0], grad_position=(0, 1, 2))(
        ms.Tensor(lx), ms.Tensor(lw), ms.Tensor(ls))
    t = [torch.tensor(v, requires_grad=True) for v in (lx, lw, ls)]
    outs_pt = pt_fixmatch(t[0], torch.from_numpy(y), t[1], t[2], tau, lam, temp)
    outs_pt[0].backward()
    for name, a, b, r in zip(("total", "sup", "unsup", "mask_rate"), outs_ms, outs_pt, ref):
        assert_close(f"fixmatch {name}", a, b, "loss")
        assert_close(f"fixmatch {name} (pt vs numpy)", b, r, "loss")
    # gradients: d total / d logits_x = (softmax - onehot) / B ; strong: lam * mask * (softmax - onehot(pseudo)) / muB
    g_x = (np.exp(_log_softmax(lx.astype(np.float64))) - np.eye(6)[y]) / 4
    g_s = lam * mask[:, None] * (np.exp(_log_softmax(ls.astype(np.float64))) - np.eye(6)[q.argmax(1)]) / 12
    for name, gm, tp, r in (("logits_x", grads_ms[0], t[0], g_x), ("logits_strong", grads_ms[2], t[2], g_s)):
        assert_close(f"fixmatch grad {name}", gm, tp.grad, "grads")
        assert_close(f"fixmatch grad {name} (pt vs numpy)", tp.grad, r, "grads")
    assert np.abs(grads_ms[1].asnumpy()).max() == 0 and t[1].grad is None   # pseudo-labels: no gradient


SHAPE = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=24, decoder_depth=1,
             decoder_num_heads=2, mlp_ratio=2.0)


def _pair(norm_pix):
    torch.manual_seed(0)
    pt = PtMAE(**SHAPE, norm_pix_loss=norm_pix)
    msn = MsMAE(**SHAPE, norm_pix_loss=norm_pix)
    load_pt_state_into(msn, {k: v.detach().numpy() for k, v in pt.state_dict().items()})
    return msn, pt


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)
    keep, restore, mask = mae_masks(rng, 3, 16, 0.75)
    return images, keep, restore, mask


def test_sincos_pos_embed_matches_formula():
    emb = sincos_pos_embed(8, 2)
    assert emb.shape == (5, 8) and (emb[0] == 0).all()
    # token 1 + (row 1, col 0): first half encodes the column (0), second half the row (1)
    omega = 1.0 / 10000 ** (np.arange(2) / 2.0)
    np.testing.assert_allclose(emb[1 + 2], np.concatenate([np.sin(0 * omega), np.cos(0 * omega),
                                                           np.sin(omega), np.cos(omega)]), rtol=1e-6)


@pytest.mark.parametrize("norm_pix", [True, False], ids=["norm_pix", "raw_pix"])
def test_mae_forward_loss_and_grads(norm_pix):
    msn, pt = _pair(norm_pix)
    images, keep, restore, mask = _batch()
    pt.train()
    msn.set_train(True)
    args_pt = [torch.from_numpy(a) for a in (images, keep.astype(np.int64), restore.astype(np.int64), mask)]
    loss_pt = pt(*args_pt)
    loss_pt.backward()
    args_ms = [ms.Tensor(a) for a in (images, keep, restore, mask)]
    params = msn.trainable_params()
    loss_ms, grads = ms.value_and_grad(lambda *a: msn(*a), None, params)(*args_ms)
    assert_close(f"MAE loss ({'norm' if norm_pix else 'raw'} pixels)", loss_ms, loss_pt, "loss")
    # independent: the loss from torch's own prediction, with numpy patchify and normalisation
    with torch.no_grad():
        pred = pt.forward_decoder(pt.forward_encoder(*args_pt[:2]), args_pt[2]).numpy().astype(np.float64)
    tgt = images.astype(np.float64).reshape(3, 3, 4, 8, 4, 8).transpose(0, 2, 4, 3, 5, 1).reshape(3, 16, 192)
    if norm_pix:
        tgt = (tgt - tgt.mean(-1, keepdims=True)) / np.sqrt(tgt.var(-1, ddof=1, keepdims=True) + 1e-6)
    ref = (((pred - tgt) ** 2).mean(-1) * mask).sum() / mask.sum()
    assert_close("MAE loss (pt vs numpy)", loss_pt, ref, "loss")
    g_ms = convert_state_dict({p.name: g.asnumpy() for p, g in zip(params, grads)},
                              {k: v for k, v in target_shapes(pt).items() if k not in ("pos_embed", "decoder_pos_embed")},
                              "ms2pt")
    g_pt = {k: p.grad.numpy() for k, p in pt.named_parameters() if p.requires_grad}
    assert set(g_pt) == set(g_ms) and len(g_pt) > 30
    assert_all_close("MAE grad ", g_ms, g_pt, "grads")
    for k in (k for k in g_pt if k.endswith("attn.qkv.bias")):
        for g in (g_pt[k], g_ms[k]):     # key bias: softmax shift invariance makes its true gradient 0
            q, kk, v = np.split(g, 3)
            assert np.abs(kk).max() <= 1e-5 * max(np.abs(q).max(), np.abs(v).max()), k
    pt.eval()
    msn.set_train(False)
    with torch.no_grad():
        feats_pt = pt.encode(args_pt[0])
    assert_close("MAE encoder class token (no mask)", msn.encode(args_ms[0]), feats_pt, "forward")


def test_tiny_image_text_model_forward():
    from common.zero_shot import byte_tokenize
    from ms_models.species196.zero_shot import species196_tiny_clip as ms_clip
    from pt_reference.species196.zero_shot import species196_tiny_clip as pt_clip
    torch.manual_seed(0)
    pt = pt_clip()
    msn = ms_clip()
    load_pt_state_into(msn, {k: v.detach().numpy() for k, v in pt.state_dict().items()})
    images = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    tokens = byte_tokenize(["a photo of Helix pomatia.", "a Roman snail"], 40)
    with torch.no_grad():
        img_pt = pt.encode_image(torch.from_numpy(images))
        txt_pt = pt.encode_text(torch.from_numpy(tokens))
    assert_close("tiny image-text encode_image", msn.encode_image(ms.Tensor(images)), img_pt, "forward")
    assert_close("tiny image-text encode_text", msn.encode_text(ms.Tensor(tokens)), txt_pt, "forward")
