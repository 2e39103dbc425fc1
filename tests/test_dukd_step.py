"""Two-step optimizer semantics of the DUKD iteration on a one-parameter toy, against a NumPy
re-derivation: step A applies grad L_A(w0); step B applies grad L_A(w0) + grad L_B(w1) (the
released code does not zero the gradients between the steps), or grad L_B(w1) alone with
``zero_grad_between_steps``. Both frameworks' ``DUKDTrainStep`` are checked."""
import types

import numpy as np
import pytest
import mindspore as ms
import torch
from mindspore import Parameter, Tensor, nn as msnn, ops

from common.data.sr_data import augment_np
from common.sr_resize import imresize
from common.sr_task import DUKDOptions
from common.train_options import TrainOptions
from ms_models.dukd.train_step import DUKDTrainStep as MsStep
from ms_models.engine.optim import build_optimizer as ms_optimizer, hyper_tensors
from pt_reference.dukd.train_step import DUKDTrainStep as PtStep
from pt_reference.engine.optim import build_optimizer as pt_optimizer

ms.set_device("CPU")
ms.runtime.launch_blocking()
S, H, B, NSUB = 2, 4, 3, 2
W0, WT, LR, BETAS, EPS = 0.8, 1.1, 0.05, (0.9, 0.99), 1e-8


class PtToy(torch.nn.Module):
    """out = w * nearest-upsample(x) (a single trainable scalar)."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))

    def forward(self, x):
        return self.w * x.repeat_interleave(S, -1).repeat_interleave(S, -2)


class MsToy(msnn.Cell):
    def __init__(self, w):
        super().__init__()
        self.w = Parameter(Tensor(np.float32(w)), name="w")

    def construct(self, x):
        return self.w * ops.repeat_elements(ops.repeat_elements(x, S, 3), S, 2)


def _up(x):
    return x.repeat(S, -1).repeat(S, -2)


def _l1_grad(w, a, b):
    """d/dw mean |w a - b| (float64)."""
    return float(np.mean(np.sign(w * a - b) * a))


def _expected(batch, opts):
    lq, gt, z, masks = [a.astype(np.float64) for a in batch]
    z = z.transpose(1, 0, 2, 3, 4).reshape(-1, 3, H, H)
    masks = masks.transpose(1, 0, 2).reshape(-1, 4)
    down = imresize(lq, 1.0 / S, layout="chw")
    ga = opts.pix_weight * _l1_grad(W0, _up(lq), gt) + opts.kd_weight * _l1_grad(W0, _up(lq), WT * _up(lq))
    m = v = 0.0
    w = W0
    steps = []

    def adam(w, g, t):
        nonlocal m, v
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        return w - LR / (1 - BETAS[0] ** t) * m / (np.sqrt(v) / np.sqrt(1 - BETAS[1] ** t) + EPS)

    w1 = adam(w, ga, 1)
    steps.append(w1)
    # L_B at w1: zoom-in w_kd mean |T(z) - inv(S(A z))|, zoom-out terms; numeric derivative of the
    # exact piecewise-linear loss (central difference, far from kinks for this data)
    order = "forward" if opts.aug_inverse == "reuse" else "reverse"

    def loss_b(wv):
        out = augment_np(wv * _up(augment_np(z, masks, "forward")), masks, order)
        zi = opts.kd_weight * np.mean(np.abs(WT * _up(z) - out))
        zo = opts.pix_weight * np.mean(np.abs(wv * _up(down) - lq)) + opts.kd_weight * np.mean(
            np.abs(wv * _up(down) - WT * _up(down)))
        return zi + zo

    h = 1e-6
    gb = (loss_b(w1 + h) - loss_b(w1 - h)) / (2 * h)
    g = gb if opts.zero_grad_between_steps else ga + gb
    steps.append(adam(w1, g, 2))
    return steps


def _batch():
    rng = np.random.default_rng(0)
    lq = rng.random((B, 3, H, H)).astype(np.float32)
    gt = rng.random((B, 3, S * H, S * H)).astype(np.float32)
    z = rng.random((B, NSUB, 3, H, H)).astype(np.float32)
    masks = (rng.random((B, NSUB, 4)) < 0.5).astype(np.float32)
    return lq, gt, z, masks


def _task(opts, teacher):
    return types.SimpleNamespace(opts=opts, teacher=teacher, scale=S, lr_patch=H)


@pytest.mark.parametrize("zero_grad,inverse", [(False, "reuse"), (True, "reverse")])
def test_two_steps_match_numpy(zero_grad, inverse):
    opts = DUKDOptions(method="dukd", pix_weight=2.0, kd_weight=1.0, n_sub=NSUB, zoom_out=True, noisy_prob=0.5,
                       aug_inverse=inverse, zero_grad_between_steps=zero_grad)
    batch = _batch()
    w1, w2 = _expected(batch, opts)
    assert abs(w2 - w1) > 1e-3 and abs(w1 - W0) > 1e-3
    tr = TrainOptions(optimizer="adamw", lr=LR, betas=list(BETAS), eps=EPS)
    hyper = (np.array([LR]), np.array([0.9]), np.array([0.0]))

    pt_model, pt_teacher = PtToy(W0), PtToy(WT).requires_grad_(False)
    opt = pt_optimizer([{"name": "student", "params": [pt_model.w], "weight_decay": 0.0}], tr)
    PtStep(_task(opts, pt_teacher), pt_model, opt)(*hyper, *[torch.from_numpy(a) for a in batch])
    got_pt = float(pt_model.w.detach())

    ms_model, ms_teacher = MsToy(W0), MsToy(WT)
    ms_teacher.w.requires_grad = False
    opt_ms = ms_optimizer([{"name": "student", "params": [ms_model.w], "weight_decay": 0.0}], tr)
    step = MsStep(_task(opts, ms_teacher), ms_model, opt_ms)
    step(*hyper_tensors(*hyper), *[Tensor(a) for a in batch])
    got_ms = float(ms_model.w.asnumpy())
    print(f"w2 numpy {w2:.7f} torch {got_pt:.7f} mindspore {got_ms:.7f}")
    assert abs(got_pt - w2) < 1e-5 and abs(got_ms - w2) < 1e-5
    assert abs(float(pt_teacher.w) - WT) < 1e-7 and abs(float(ms_teacher.w.asnumpy()) - WT) < 1e-7
    other = DUKDOptions(**{**opts.__dict__, "zero_grad_between_steps": not zero_grad})
    assert abs(_expected(batch, other)[1] - w2) > 1e-4            # carrying g_A into step B matters
