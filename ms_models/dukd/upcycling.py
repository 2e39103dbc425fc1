"""DUKD's losses in MindSpore (the twin of pt_reference/dukd/upcycling.py); traceable in GRAPH mode.

Label-consistency ops on (N, C, h, w) with per-sample 0/1 masks m (N, 4) for
(invert, flip H, flip W, transpose): each op is ``m * op(x) + (1 - m) * x``, exact for 0/1 masks,
so no data-dependent indexing is needed (the official code indexes the selected samples, which
breaks when exactly one sample is selected; here 0, 1 or all selected samples are the same path).
"""
from mindspore import nn, ops

FORWARD = ("i", "h", "v", "t")


def l1(a, b):
    """Mean absolute error (BasicSR ``L1Loss``, reduction mean)."""
    return ops.abs(a - b).mean()


def _op(x, op):
    if op == "i":
        return 1.0 - x
    if op == "h":
        return ops.flip(x, (2,))
    if op == "v":
        return ops.flip(x, (3,))
    return ops.transpose(x, (0, 1, 3, 2))


def label_consistency(x, masks, order=FORWARD):
    """Apply each sample's selected ops in ``order`` (image range 1, as the released code)."""
    for op in order:
        m = masks[:, FORWARD.index(op)].reshape(-1, 1, 1, 1)
        x = m * _op(x, op) + (1.0 - m) * x
    return x


def flatten_cells(a):
    """(B, n_sub, ...) -> (n_sub * B, ...) in the official cell-major order."""
    perm = (1, 0) + tuple(range(2, a.ndim))
    return ops.transpose(a, perm).reshape((a.shape[0] * a.shape[1],) + a.shape[2:])


class StepALoss(nn.Cell):
    """``w_pix |S(x) - y| + w_kd |S(x) - T(x)|`` (the kd term only with a teacher target).

    Returns ``(loss * scale, loss, components)``; ``scale`` is the loss scale (1 without AMP)."""

    def __init__(self, model, opts):
        super().__init__(auto_prefix=False)
        self.model = model
        self.w_pix, self.w_kd = float(opts.pix_weight), float(opts.kd_weight)
        self.use_kd = opts.uses_teacher

    def construct(self, scale, lq, gt, t_lq):
        sr = self.model(lq)
        pix = self.w_pix * l1(sr, gt)
        if self.use_kd:
            kd = self.w_kd * l1(sr, t_lq)
            return (pix + kd) * scale, pix + kd, ops.stack((pix, kd))
        return pix * scale, pix, ops.stack((pix,))


class StepBLoss(nn.Cell):
    """Zoom-in ``w_kd |T(z) - A^-1(S(A(z)))|`` plus, with zoom-out, ``w_pix |S(x_down) - x| +
    w_kd |S(x_down) - T(x_down)|``. ``aug_inverse='reuse'`` applies A again (the released code),
    ``'reverse'`` the ops in reverse order (the true inverse)."""

    def __init__(self, model, opts):
        super().__init__(auto_prefix=False)
        self.model = model
        self.w_pix, self.w_kd = float(opts.pix_weight), float(opts.kd_weight)
        self.noisy = opts.noisy_prob is not None
        self.zoom_out = bool(opts.zoom_out)
        self.inverse = FORWARD if opts.aug_inverse == "reuse" else FORWARD[::-1]

    def construct(self, scale, z, masks, lq, lq_down, t_z, t_down):
        if self.noisy:
            out = label_consistency(self.model(label_consistency(z, masks)), masks, self.inverse)
        else:
            out = self.model(z)
        zoom_in = self.w_kd * l1(t_z, out)
        if self.zoom_out:
            s_down = self.model(lq_down)
            zo_pix = self.w_pix * l1(s_down, lq)
            zo_kd = self.w_kd * l1(s_down, t_down)
        else:
            zo_pix = ops.zeros((), zoom_in.dtype)
            zo_kd = ops.zeros((), zoom_in.dtype)
        loss = zoom_in + zo_pix + zo_kd
        return loss * scale, loss, ops.stack((zoom_in, zo_pix, zo_kd))
