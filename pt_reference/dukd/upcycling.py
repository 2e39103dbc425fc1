"""DUKD's losses in PyTorch (the twin of ms_models/dukd/upcycling.py).

Label-consistency ops on (N, C, h, w) with per-sample 0/1 masks (N, 4) for (invert, flip H,
flip W, transpose), each applied as ``m * op(x) + (1 - m) * x``.
"""
import torch
from torch import nn

FORWARD = ("i", "h", "v", "t")


def l1(a, b):
    """Mean absolute error (BasicSR ``L1Loss``, reduction mean)."""
    return (a - b).abs().mean()


def _op(x, op):
    if op == "i":
        return 1.0 - x
    if op == "h":
        return torch.flip(x, (2,))
    if op == "v":
        return torch.flip(x, (3,))
    return x.transpose(2, 3)


def label_consistency(x, masks, order=FORWARD):
    """Apply each sample's selected ops in ``order`` (image range 1, as the released code)."""
    for op in order:
        m = masks[:, FORWARD.index(op)].reshape(-1, 1, 1, 1)
        x = m * _op(x, op) + (1.0 - m) * x
    return x


def flatten_cells(a):
    """(B, n_sub, ...) -> (n_sub * B, ...) in the official cell-major order."""
    return a.transpose(0, 1).reshape((a.shape[0] * a.shape[1],) + tuple(a.shape[2:]))


class StepALoss(nn.Module):
    """``w_pix |S(x) - y| + w_kd |S(x) - T(x)|``; returns ``(loss, components)``."""

    def __init__(self, model, opts):
        super().__init__()
        self.model = model
        self.w_pix, self.w_kd = float(opts.pix_weight), float(opts.kd_weight)
        self.use_kd = opts.uses_teacher

    def forward(self, lq, gt, t_lq):
        sr = self.model(lq)
        pix = self.w_pix * l1(sr, gt)
        if self.use_kd:
            kd = self.w_kd * l1(sr, t_lq)
            return pix + kd, torch.stack((pix, kd))
        return pix, torch.stack((pix,))


class StepBLoss(nn.Module):
    """Zoom-in ``w_kd |T(z) - A^-1(S(A(z)))|`` plus zoom-out ``w_pix |S(x_down) - x| + w_kd
    |S(x_down) - T(x_down)|``; ``aug_inverse`` 'reuse' (released code) or 'reverse' (true inverse)."""

    def __init__(self, model, opts):
        super().__init__()
        self.model = model
        self.w_pix, self.w_kd = float(opts.pix_weight), float(opts.kd_weight)
        self.noisy = opts.noisy_prob is not None
        self.zoom_out = bool(opts.zoom_out)
        self.inverse = FORWARD if opts.aug_inverse == "reuse" else FORWARD[::-1]

    def forward(self, z, masks, lq, lq_down, t_z, t_down):
        if self.noisy:
            out = label_consistency(self.model(label_consistency(z, masks)), masks, self.inverse)
        else:
            out = self.model(z)
        zoom_in = self.w_kd * l1(t_z, out)
        zero = torch.zeros((), dtype=zoom_in.dtype)
        zo_pix, zo_kd = zero, zero
        if self.zoom_out:
            s_down = self.model(lq_down)
            zo_pix = self.w_pix * l1(s_down, lq)
            zo_kd = self.w_kd * l1(s_down, t_down)
        return zoom_in + zo_pix + zo_kd, torch.stack((zoom_in, zo_pix, zo_kd))
