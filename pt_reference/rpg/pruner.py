"""Global magnitude pruning with RigL drop/grow (official ``rigl_torch/RigL.py``, ``sp-distribution
magnitude-exponential``); twin of ``ms_models/rpg/pruner.py``.

A mask update at step ``step`` (``PruneSchedule.is_update``):
1. until the density first reaches D: global magnitude pruning of all prunable weights to the
   density ``D ** (t / U)``: threshold = the ``round(sparsity * N)``-th smallest |w| over all layers,
   keep ``|w| >= threshold`` (ties kept), zero the rest; per-layer sparsities S_l re-derived;
2. RigL in every layer with S_l > 0: ``n_remain = int((1 - S_l) n)``, ``n_prune = int((1 - S_l) n f)``
   with the cosine drop fraction f; keep the ``n_remain - n_prune`` largest |w|, grow ``n_prune``
   positions outside the kept set with the largest |dense gradient|; new connections start at 0;
3. momentum buffers, then weights are multiplied by the new masks.
Top-n selections break ties by the lower flat index (``top_n_mask``), so both frameworks choose the
same positions; the official ``torch.topk`` leaves tie order unspecified.
"""
import torch

from .masks import MASK_NAME, STEP_NAME, prunable_layers


def top_n_mask(score, n):
    """Boolean mask of the ``n`` largest entries of the 1-D ``score``; among equal values the lower
    indices win."""
    size = score.numel()
    if n <= 0:
        return torch.zeros(size, dtype=torch.bool)
    if n >= size:
        return torch.ones(size, dtype=torch.bool)
    v = torch.sort(score, descending=True).values[n - 1]
    gt = score > v
    eq = score == v
    need = n - int(gt.sum())
    return gt | (eq & (torch.cumsum(eq.to(torch.int64), 0) <= need))


class RigLPruner:
    """Mask state and update rule over ``model`` (which carries the masks, see ``masks.py``).

    Args:
        model: the network with masks attached.
        schedule: a ``PruneSchedule``.
    """

    def __init__(self, model, schedule):
        self.model = model
        self.schedule = schedule
        self.layers = prunable_layers(model)
        self.names = [f"{n}.weight" if n else "weight" for n, _, _ in self.layers]
        self.weights = [m.weight for _, m, _ in self.layers]
        self.masks = [getattr(m, MASK_NAME) for _, m, _ in self.layers]
        self.is_linear = [lin for _, _, lin in self.layers]
        self.dense_grads = [torch.zeros_like(w) for w in self.weights]
        self.optimizer = None
        self.layer_sparsity = None  # S_l of the last global pruning (official ``self.S``)
        self.last_update = None

    @property
    def conv_weights(self):
        return [w for w, lin in zip(self.weights, self.is_linear) if not lin]

    def steps_done(self):
        return int(getattr(self.model, STEP_NAME).reshape(-1)[0])

    def set_steps_done(self, step):
        getattr(self.model, STEP_NAME).fill_(int(step))

    @torch.no_grad()
    def accumulate(self, grads):
        """Add ``grad / grad_accumulation_n`` of each prunable weight (dense, before masking)."""
        n = self.schedule.grad_accumulation_n
        for acc, g in zip(self.dense_grads, grads):
            acc.add_(g / n)

    @torch.no_grad()
    def apply_masks(self, optimizer=None):
        """Momentum buffers (SGD), then weights, multiplied by the masks (the official step wrapper)."""
        optimizer = optimizer or self.optimizer
        if optimizer is not None:
            for w, m in zip(self.weights, self.masks):
                buf = optimizer.state.get(w, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(m)
        for w, m in zip(self.weights, self.masks):
            w.mul_(m)

    @torch.no_grad()
    def global_magnitude_masks(self, density):
        """Boolean masks keeping ``|w| >= `` the ``round((1 - density) N)``-th smallest |w|."""
        sparsity = 1.0 - density
        scores = torch.cat([w.abs().reshape(-1) for w in self.weights])
        top_k = round(sparsity * scores.numel())
        threshold = torch.kthvalue(scores, top_k).values if (sparsity != 0 and top_k > 0) else 0.0
        return [w.abs() >= threshold for w in self.weights]

    @torch.no_grad()
    def rigl_mask(self, weight, current, dense_grad, sparsity, frac):
        """New boolean mask of one layer (drop by |w|, grow by |dense grad|); zeroes new weights."""
        n_total = weight.numel()
        remain_f = (1.0 - sparsity) * n_total
        n_remain = int(remain_f)
        n_prune = int(remain_f * frac)
        keep = top_n_mask(weight.abs().reshape(-1), n_remain - n_prune)
        if self.schedule.alpha == 0.0:
            return keep.reshape(weight.shape)
        grow_score = torch.where(keep, torch.full_like(dense_grad.reshape(-1), -1.0), dense_grad.abs().reshape(-1))
        grow = top_n_mask(grow_score, n_prune).reshape(weight.shape)
        new = grow & ~current
        weight.masked_fill_(new, 0.0)
        return keep.reshape(weight.shape) | grow

    @torch.no_grad()
    def update(self, step, optimizer=None):
        """The mask update at ``step``; returns a dict (density target, per-layer sparsity, counts)."""
        sched = self.schedule
        current = [m.bool() for m in self.masks]
        density = None
        if sched.global_pruning(step):
            density = sched.density(step)
            current = self.global_magnitude_masks(density)
            for w, c in zip(self.weights, current):
                w.mul_(c)
            self.layer_sparsity = [float((~c).sum()) / c.numel() for c in current]
        elif self.layer_sparsity is None:  # after a resume: re-derived from the stored masks
            self.layer_sparsity = [float((~c).sum()) / c.numel() for c in current]
        sparsities = self.layer_sparsity
        frac = sched.drop_fraction(step)
        new_masks = []
        for w, c, g, s in zip(self.weights, current, self.dense_grads, sparsities):
            new_masks.append(self.rigl_mask(w, c, g, s, frac) if s > 0 else c)
        for m, nm in zip(self.masks, new_masks):
            m.copy_(nm.to(m.dtype))
        self.apply_masks(optimizer)
        for g in self.dense_grads:
            g.zero_()
        self.last_update = {"step": step, "density_target": density, "drop_fraction": frac,
                            "layer_sparsity_before_rigl": sparsities}
        return self.last_update

    @torch.no_grad()
    def global_sparsity(self):
        """Exact fraction of zero entries over all prunable weights."""
        zeros = sum(int((w == 0).sum()) for w in self.weights)
        return zeros / sum(w.numel() for w in self.weights)

    @torch.no_grad()
    def mask_sparsity(self):
        """Fraction of masked-out entries over all prunable weights (the official report's count)."""
        return sum(int((m == 0).sum()) for m in self.masks) / sum(m.numel() for m in self.masks)
