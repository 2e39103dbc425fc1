"""The compiled train step: loss and gradients, data-parallel mean, loss-scale check, clipping and
the optimizer update, as one Cell run in GRAPH mode (or PyNative for debugging).

Inputs of ``TrainStep``: ``lrs, moms, wds`` (float32 [groups]) and the batch tensors. Outputs:
the loss (float32 scalar) and the loss components (float32 [n_components]), averaged over ranks.
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

_square_sum = ops.MultitypeFuncGraph("square_sum")
_scale_grad = ops.MultitypeFuncGraph("scale_grad")


@_square_sum.register("Tensor")
def _square_sum_fn(g):
    g = g.astype(ms.float32)
    return (g * g).sum()


@_scale_grad.register("Tensor", "Tensor")
def _scale_grad_fn(coef, g):
    return g * coef.astype(g.dtype)


def global_norm(grads):
    """sqrt of the sum of squares of all gradient entries (float32 scalar)."""
    return ops.sqrt(ops.addn(ops.HyperMap()(_square_sum, grads)))


def clip_by_global_norm(grads, max_norm):
    """torch ``clip_grad_norm_``: scale by ``min(1, max_norm / (norm + 1e-6))``."""
    coef = ops.minimum(max_norm / (global_norm(grads) + 1e-6), 1.0)
    return ops.HyperMap()(ops.partial(_scale_grad, coef), grads)


def _stack_components(comps):
    if isinstance(comps, (tuple, list)):
        return ops.stack([ops.reshape(c, ()).astype(ms.float32) for c in comps])
    return ops.reshape(comps, (-1,)).astype(ms.float32)


class _LossCell(nn.Cell):
    """``task.forward_loss(model, *batch)`` -> ``(loss * scale, loss, components)``."""

    def __init__(self, task, model, scale=None):
        super().__init__(auto_prefix=False)
        self.task = task
        self.model = model
        self.scale = scale

    def construct(self, *batch):
        loss, comps = self.task.forward_loss(self.model, *batch)
        loss = loss.astype(ms.float32)
        scaled = loss if self.scale is None else loss * self.scale
        return scaled, loss, _stack_components(comps)


class DynamicLossScale(nn.Cell):
    """Loss scale state and its update rule (``ms.amp.DynamicLossScaler`` semantics, as a Cell so its
    Parameters are part of the step and of the checkpoint): after ``window`` finite steps the scale
    doubles; a non-finite step halves it (not below 1) and is skipped."""

    def __init__(self, init_scale=65536.0, window=2000, factor=2.0):
        super().__init__(auto_prefix=False)
        self.scale_value = Parameter(Tensor(np.float32(init_scale)), name="loss_scale.value", requires_grad=False)
        self.counter = Parameter(Tensor(np.int32(0)), name="loss_scale.counter", requires_grad=False)
        self.window = int(window)
        self.factor = float(factor)

    def construct(self, finite):
        grown = self.scale_value * self.factor
        at_window = self.counter == (self.window - 1)
        keep_or_grow = ops.select(at_window, ops.select(ops.isfinite(grown), grown, self.scale_value),
                                  self.scale_value)
        new_scale = ops.select(finite, keep_or_grow, ops.maximum(self.scale_value / self.factor, 1.0))
        ops.assign(self.scale_value, new_scale)
        return ops.assign(self.counter, ((self.counter + 1) % self.window) * finite.astype(ms.int32))


class TrainStep(nn.Cell):
    """One optimizer step.

    Args:
        task: the family task (its ``forward_loss`` is traced).
        model: ``task.model``.
        optimizer: an ``ms_models.engine.optim`` optimizer over the trainable groups.
        grad_clip: max global gradient norm (0 = off).
        loss_scale: a ``DynamicLossScale`` or None.
        world: data-parallel size; > 1 averages gradients (``nn.DistributedGradReducer``) and the
            reported loss over ranks.
    """

    def __init__(self, task, model, optimizer, grad_clip=0.0, loss_scale=None, world=1):
        super().__init__(auto_prefix=False)
        self.model = model
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.loss_scale = loss_scale
        self.loss_cell = _LossCell(task, model, None if loss_scale is None else loss_scale.scale_value)
        self.grad_fn = ms.value_and_grad(self.loss_cell, None, self.weights, has_aux=True)
        self.grad_clip = float(grad_clip)
        self.world = int(world)
        if self.world > 1:
            self.reducer = nn.DistributedGradReducer(self.weights, mean=True, degree=self.world)
            self.all_reduce = ops.AllReduce()

    def construct(self, lrs, moms, wds, *batch):
        outs, grads = self.grad_fn(*batch)
        loss, comps = outs[1], outs[2]
        if self.world > 1:
            grads = self.reducer(grads)
            loss = self.all_reduce(loss) / self.world
            comps = self.all_reduce(comps) / self.world
        if self.loss_scale is not None:
            grads = ops.HyperMap()(ops.partial(_scale_grad, 1.0 / self.loss_scale.scale_value), grads)
            finite = ms.amp.all_finite(grads)
            loss = ops.depend(loss, self.loss_scale(finite))
        if self.grad_clip > 0:
            grads = clip_by_global_norm(grads, self.grad_clip)
        if self.loss_scale is not None:
            if finite:
                loss = ops.depend(loss, self.optimizer(grads, lrs, moms, wds))
        else:
            loss = ops.depend(loss, self.optimizer(grads, lrs, moms, wds))
        return loss, comps
