"""LightCLIP model parity: eval-mode encoders (forward level), the Hungarian matching computed from
each framework's similarities, every loss component and the gradients of the total loss on one
shared batch (train mode), and 5 engine training steps (loss curves, matchings, final weights).

Key biases: the key slice of every attention ``in_proj_bias`` has a mathematically zero gradient
(softmax is invariant to a per-row constant), so Adam turns rounding noise there into
framework-specific steps; those slices are recorded, not asserted (as in test_cfam_train.py).
"""
from pathlib import Path

import mindspore as ms
import numpy as np
import torch

from common.lightclip_ops import real_word_mask, token_matching
from common.runlog import read_jsonl
from common.weights import convert_state_dict
from harness import assert_all_close, assert_close, check_close
from lightclip_fixtures import small_cfg, task_pair
from ms_models.engine import Trainer as MsTrainer
from ms_models.lightclip import task as ms_task_mod
from ms_models.utils.weights import state_numpy as ms_numpy
from pt_reference.engine import Trainer as PtTrainer
from pt_reference.lightclip import task as pt_task_mod
from pt_reference.utils.weights import state_numpy as pt_numpy


def _pt_names(pt_model, arrays, params_only=False):
    if params_only:
        shapes = {k: tuple(p.shape) for k, p in pt_model.named_parameters()}
    else:
        shapes = {k: v.shape for k, v in pt_numpy(pt_model).items()}
    return convert_state_dict(arrays, shapes, "ms2pt")


def test_encoders_matching_losses_and_grads():
    cfg = small_cfg("loss.soft_label_mode=similarity", "loss.token_loss=nce")
    ms_t, pt_t = task_pair(cfg)
    batch = next(iter(ms_t.train_batches(0)))
    images, ids = batch[0], batch[1]
    ms_t.model.set_train(False)
    pt_t.model.eval()
    with torch.no_grad():
        assert_close("encode_image", ms_t.model.encode_image(ms.Tensor(images)),
                     pt_t.model.encode_image(torch.from_numpy(images)), "forward")
        assert_close("encode_text", ms_t.model.encode_text(ms.Tensor(ids)),
                     pt_t.model.encode_text(torch.from_numpy(ids)), "forward")
    match_ms = ms_task_mod.compute_matching(ms_t.model, ms_task_mod._Similarity(ms_t.model), ms.Tensor(images),
                                            ms.Tensor(ids), ms_t.data, None)
    match_pt = pt_task_mod.compute_matching(pt_t.model, torch.from_numpy(images), torch.from_numpy(ids), pt_t.data,
                                            None)
    np.testing.assert_array_equal(match_ms, match_pt)
    words = real_word_mask(ids, ms_t.data.sot_id, ms_t.data.eot_id)
    assert (match_pt.sum((1, 2)) == np.minimum(words.sum(1), match_pt.shape[2])).all()
    batch = (*batch[:2], np.full_like(batch[2], 0.07), *batch[3:5], match_pt)
    ms_t.model.set_train(True)
    pt_t.model.train()

    def loss_ms(*b):
        loss, comps = ms_t.forward_loss(ms_t.model, *b)
        return loss, comps

    params = ms_t.model.trainable_params()
    (loss_m, comps_m), grads_m = ms.value_and_grad(loss_ms, None, params, has_aux=True)(
        *[ms.Tensor(a) for a in batch])
    loss_p, comps_p = pt_t.forward_loss(pt_t.model, *[torch.from_numpy(a) for a in batch])
    loss_p.backward()
    for name, a, b in zip(ms_t.loss_names, comps_m, comps_p):
        assert float(b.detach()) > 0, name
        assert_close(f"model loss {name}", a, b, "loss")
    assert_close("model total loss", loss_m, loss_p, "loss")
    g_ms = _pt_names(pt_t.model, {p.name: g.asnumpy() for p, g in zip(params, grads_m)}, params_only=True)
    g_pt = {n: p.grad.numpy() for n, p in pt_t.model.named_parameters()}
    assert set(g_ms) == set(g_pt)
    assert_all_close("grad ", g_ms, g_pt, "grads")


def _curve(run_dir, key):
    return np.array([r[key] for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "loss" in r])


def test_five_training_steps_match(tmp_path):
    cfg = small_cfg("train.epochs=1", "train.max_steps=5", "train.graph_mode=false", "train.log_interval=0",
                    "schedule.warmup_epochs=0.5", "loss.alpha_max=0.2", "loss.match_threshold=-0.5")
    ms_t, pt_t = task_pair(cfg)
    start = pt_numpy(pt_t.model)
    logs = {"ms": [], "pt": []}

    def spy(key):
        def wrapped(*args):
            out = token_matching(*args)
            logs[key].append(out)
            return out
        return wrapped

    ms_task_mod.token_matching, pt_task_mod.token_matching = spy("ms"), spy("pt")
    try:
        MsTrainer(ms_t, cfg, tmp_path / "ms").fit()
        PtTrainer(pt_t, cfg, tmp_path / "pt").fit()
    finally:
        ms_task_mod.token_matching = pt_task_mod.token_matching = token_matching
    assert len(logs["ms"]) == len(logs["pt"]) == 5
    for step, (a, b) in enumerate(zip(logs["ms"], logs["pt"]), 1):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}: matchings differ")
    for key in ("loss",) + ms_t.loss_names:
        a, b = _curve(tmp_path / "ms", key), _curve(tmp_path / "pt", key)
        assert len(a) == len(b) == 5
        assert_close(f"lightclip 5-step {key} curve", a, b, "train")
    pt_w = pt_numpy(pt_t.model)
    ms_as_pt = _pt_names(pt_t.model, ms_numpy(ms_t.model))
    tensors = [k for k in pt_w if not k.endswith("num_batches_tracked")]  # absent in MindSpore
    trained = [k for k in tensors if np.abs(pt_w[k] - start[k]).max() > 0]
    untrained = sorted(set(tensors) - set(trained))
    assert not untrained, f"tensors that did not change: {untrained}"
    failed = []
    for k in trained:
        a, b = ms_as_pt[k], pt_w[k]
        if k.endswith("in_proj_bias"):
            e = a.shape[0] // 3
            check_close(f"lightclip 5-step weight {k} key slice (zero-gradient, not asserted)", a[e:2 * e],
                        b[e:2 * e], "train")
            a, b = np.concatenate([a[:e], a[2 * e:]]), np.concatenate([b[:e], b[2 * e:]])
        if not check_close(f"lightclip 5-step weight {k}", a, b, "train"):
            failed.append(k)
    assert not failed, failed
