"""Global magnitude pruning with RigL drop/grow (official ``rigl_torch/RigL.py``, ``sp-distribution
magnitude-exponential``); twin of ``pt_reference/rpg/pruner.py``. Runs on the host side of the
loop (PyNative ops, ``ops.assign`` into the Parameters) every ``delta`` iterations.

A mask update at step ``step`` (``PruneSchedule.is_update``):
1. until the density first reaches D: global magnitude pruning of all prunable weights to the
   density ``D ** (t / U)``: threshold = the ``round(sparsity * N)``-th smallest |w| over all layers,
   keep ``|w| >= threshold`` (ties kept), zero the rest; per-layer sparsities S_l re-derived;
2. RigL in every layer with S_l > 0: ``n_remain = int((1 - S_l) n)``, ``n_prune = int((1 - S_l) n f)``
   with the cosine drop fraction f; keep the ``n_remain - n_prune`` largest |w|, grow ``n_prune``
   positions outside the kept set with the largest |dense gradient|; new connections start at 0;
3. momentum buffers, then weights are multiplied by the new masks.
Top-n selections break ties by the lower flat index (``top_n_mask``), as in the PyTorch twin.
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, ops

from .masks import MASK_NAME, STEP_NAME, prunable_layers


def top_n_mask(score, n):
    """Boolean mask of the ``n`` largest entries of the 1-D ``score``; among equal values the lower
    indices win."""
    size = score.shape[0]
    if n <= 0:
        return ops.zeros(size, ms.bool_)
    if n >= size:
        return ops.ones(size, ms.bool_)
    v = ops.sort(score, descending=True)[0][n - 1]
    gt = score > v
    eq = score == v
    need = n - int(gt.astype(ms.int32).sum())
    return ops.logical_or(gt, ops.logical_and(eq, ops.cumsum(eq.astype(ms.int32), 0) <= need))


class RigLPruner:
    """Mask state and update rule over ``net`` (which carries the masks, see ``masks.py``).

    Args:
        net: the network with masks attached.
        schedule: a ``PruneSchedule``.
    """

    def __init__(self, net, schedule):
        self.model = net
        self.schedule = schedule
        self.layers = prunable_layers(net)
        self.weights = [cell.weight for _, cell, _ in self.layers]
        self.names = [w.name for w in self.weights]
        self.masks = ParameterTuple([getattr(cell, MASK_NAME) for _, cell, _ in self.layers])
        self.is_linear = [lin for _, _, lin in self.layers]
        self.dense_grads = ParameterTuple([
            Parameter(Tensor(np.zeros(w.shape, np.float32)), name=f"rpg_dense_grad.{w.name}", requires_grad=False)
            for w in self.weights])
        self.optimizer = None
        self.layer_sparsity = None  # S_l of the last global pruning (official ``self.S``)
        self.last_update = None

    @property
    def conv_weights(self):
        return [w for w, lin in zip(self.weights, self.is_linear) if not lin]

    def steps_done(self):
        return int(getattr(self.model, STEP_NAME).asnumpy().reshape(-1)[0])

    def set_steps_done(self, step):
        ops.assign(getattr(self.model, STEP_NAME), Tensor(np.full((1,), step, np.int32)))

    def momentum_buffers(self, optimizer=None):
        """SGD momentum buffers of the prunable weights (the first group of the optimizer), or []."""
        optimizer = optimizer or self.optimizer
        bufs = getattr(optimizer, "momentum_buf", None)
        if bufs is None:
            return []
        names = [p.name for p in optimizer.parameters][:len(self.weights)]
        if names != self.names:
            raise ValueError("RigLPruner: the optimizer's first parameters must be the prunable weights in layer "
                             "order (task.param_groups puts them in group 'prunable')")
        return list(bufs)[:len(self.weights)]

    def apply_masks(self, optimizer=None):
        """Momentum buffers (SGD), then weights, multiplied by the masks (the official step wrapper)."""
        for buf, m in zip(self.momentum_buffers(optimizer), self.masks):
            ops.assign(buf, buf * m)
        for w, m in zip(self.weights, self.masks):
            ops.assign(w, w * m)

    def global_magnitude_masks(self, density):
        """Boolean masks keeping ``|w| >= `` the ``round((1 - density) N)``-th smallest |w|."""
        sparsity = 1.0 - density
        scores = ops.cat([ops.abs(w).reshape(-1) for w in self.weights])
        top_k = round(sparsity * scores.shape[0])
        if sparsity != 0 and top_k > 0:
            threshold = ops.sort(scores)[0][top_k - 1]
        else:
            threshold = Tensor(0.0, ms.float32)
        return [ops.abs(w) >= threshold for w in self.weights]

    def rigl_mask(self, weight, current, dense_grad, sparsity, frac):
        """New boolean mask of one layer (drop by |w|, grow by |dense grad|); zeroes new weights."""
        n_total = int(np.prod(weight.shape))
        remain_f = (1.0 - sparsity) * n_total
        n_remain = int(remain_f)
        n_prune = int(remain_f * frac)
        keep = top_n_mask(ops.abs(weight).reshape(-1), n_remain - n_prune)
        if self.schedule.alpha == 0.0:
            return keep.reshape(weight.shape)
        grow_score = ops.where(keep, ops.full((n_total,), -1.0, dtype=ms.float32), ops.abs(dense_grad).reshape(-1))
        grow = top_n_mask(grow_score, n_prune).reshape(weight.shape)
        new = ops.logical_and(grow, ops.logical_not(current))
        ops.assign(weight, ops.where(new, ops.zeros_like(weight), weight))
        return ops.logical_or(keep.reshape(weight.shape), grow)

    def update(self, step, optimizer=None):
        """The mask update at ``step``; returns a dict (density target, drop fraction, layer sparsities)."""
        sched = self.schedule
        current = [m.astype(ms.bool_) for m in self.masks]
        density = None
        if sched.global_pruning(step):
            density = sched.density(step)
            current = self.global_magnitude_masks(density)
            for w, c in zip(self.weights, current):
                ops.assign(w, w * c.astype(w.dtype))
            self.layer_sparsity = [_sparsity(c) for c in current]
        elif self.layer_sparsity is None:  # after a resume: re-derived from the stored masks
            self.layer_sparsity = [_sparsity(c) for c in current]
        sparsities = self.layer_sparsity
        frac = sched.drop_fraction(step)
        new_masks = [self.rigl_mask(w, c, g, s, frac) if s > 0 else c
                     for w, c, g, s in zip(self.weights, current, self.dense_grads, sparsities)]
        for m, nm in zip(self.masks, new_masks):
            ops.assign(m, nm.astype(ms.float32))
        self.apply_masks(optimizer)
        for g in self.dense_grads:
            ops.assign(g, ops.zeros_like(g))
        self.last_update = {"step": step, "density_target": density, "drop_fraction": frac,
                            "layer_sparsity_before_rigl": sparsities}
        return self.last_update

    def global_sparsity(self):
        """Exact fraction of zero entries over all prunable weights."""
        zeros = sum(int((w.asnumpy() == 0).sum()) for w in self.weights)
        return zeros / sum(int(np.prod(w.shape)) for w in self.weights)

    def mask_sparsity(self):
        """Fraction of masked-out entries over all prunable weights (the official report's count)."""
        return sum(int((m.asnumpy() == 0).sum()) for m in self.masks) / sum(int(np.prod(m.shape)) for m in self.masks)


def _sparsity(mask):
    n = int(np.prod(mask.shape))
    return (n - int(mask.astype(ms.int32).sum())) / n
