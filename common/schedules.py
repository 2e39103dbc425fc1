"""Learning-rate, momentum and EMA-decay schedules as pure functions (no framework).

Conventions: ``it`` is the 0-based index of the optimizer step about to be taken, ``epoch`` the
0-based epoch it belongs to. The engines evaluate these in float64 on the host every iteration and
feed the results to the compiled step as tensors, so a schedule never triggers a recompile.

Warm-up follows YOLOv6: for ``it <= warmup_iters`` every group's lr is interpolated linearly from
its ``warmup_start_lr`` to its scheduled lr, and (unless ``warmup_momentum`` is None) the SGD
momentum from ``warmup_momentum`` to ``momentum``;
``warmup_iters = max(round(warmup_epochs * steps_per_epoch), min_warmup_iters)``.
"""
import math

import numpy as np

SCHEDULERS = ("cosine", "linear", "step", "constant")


def cosine_factor(t, lrf):
    """Cosine from 1 at ``t=0`` to ``lrf`` at ``t=1``: ``((1 - cos(pi t)) / 2) (lrf - 1) + 1``."""
    return ((1.0 - math.cos(t * math.pi)) / 2.0) * (lrf - 1.0) + 1.0


def linear_factor(t, lrf):
    """Straight line from 1 at ``t=0`` to ``lrf`` at ``t=1``."""
    return (1.0 - t) * (1.0 - lrf) + lrf


def step_factor(epoch, milestones, gamma):
    """``gamma ** (number of milestones <= epoch)``; milestones are epoch indices."""
    return gamma ** sum(1 for m in milestones if epoch >= m)


def warmup_iters(warmup_epochs, steps_per_epoch, min_warmup_iters=0):
    """Number of warm-up iterations (0 disables warm-up)."""
    if warmup_epochs <= 0 and min_warmup_iters <= 0:
        return 0
    return max(int(round(warmup_epochs * steps_per_epoch)), int(min_warmup_iters))


def ema_decay(updates, decay, tau):
    """EMA decay after ``updates`` updates: ``decay (1 - exp(-updates / tau))`` (YOLOv6), or the
    constant ``decay`` when ``tau <= 0``."""
    if tau <= 0:
        return float(decay)
    return float(decay) * (1.0 - math.exp(-updates / tau))


class Schedule:
    """Per-group lr and momentum for every iteration.

    Args:
        groups: list of dicts with ``lr_scale`` (float) and ``warmup_start_lr`` (float or None, None
            meaning the run-wide default), in optimizer group order.
        lr, momentum: base lr and the post-warm-up momentum.
        scheduler: one of ``SCHEDULERS``; ``per_iter`` evaluates cosine/linear at the fractional
            position ``it / total_iters`` instead of ``epoch / epochs``.
        epochs, steps_per_epoch: define ``total_iters = epochs * steps_per_epoch``.
        lrf: final lr factor of cosine/linear; ``milestones``/``gamma`` for ``step``.
        warmup_epochs, min_warmup_iters, warmup_start_lr, warmup_momentum: see module docstring.
    """

    def __init__(self, groups, *, lr, momentum, scheduler, epochs, steps_per_epoch, lrf=0.01,
                 per_iter=False, milestones=(), gamma=0.1, warmup_epochs=0.0, min_warmup_iters=0,
                 warmup_start_lr=0.0, warmup_momentum=None):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"train.scheduler: '{scheduler}' is not one of {', '.join(SCHEDULERS)}")
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"schedule needs epochs >= 1 and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.scheduler = scheduler
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_iters = self.epochs * self.steps_per_epoch
        self.lrf = float(lrf)
        self.per_iter = bool(per_iter)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.warmup_iters = warmup_iters(warmup_epochs, steps_per_epoch, min_warmup_iters)
        self.warmup_momentum = self.momentum if warmup_momentum is None else float(warmup_momentum)
        self.lr_scale = np.array([float(g.get("lr_scale", 1.0)) for g in groups])
        self.start_lr = np.array([float(warmup_start_lr if g.get("warmup_start_lr") is None
                                        else g["warmup_start_lr"]) for g in groups])

    def factor(self, it, epoch):
        """Multiplier of the base lr at iteration ``it`` of epoch ``epoch``, warm-up excluded."""
        if self.scheduler == "constant":
            return 1.0
        if self.scheduler == "step":
            return step_factor(epoch, self.milestones, self.gamma)
        t = it / self.total_iters if self.per_iter else epoch / self.epochs
        fn = cosine_factor if self.scheduler == "cosine" else linear_factor
        return fn(t, self.lrf)

    def __call__(self, it, epoch):
        """``(lrs, momenta)``: float64 arrays of shape [groups]."""
        lrs = self.lr * self.lr_scale * self.factor(it, epoch)
        mom = self.momentum
        w = self.warmup_iters
        if w > 0 and it <= w:
            frac = it / w
            lrs = self.start_lr + (lrs - self.start_lr) * frac
            mom = self.warmup_momentum + (self.momentum - self.warmup_momentum) * frac
        return lrs, np.full(len(self.lr_scale), mom)
