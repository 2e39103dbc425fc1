"""DUKD's training iteration as one compiled Cell (the engine's ``build_train_step`` hook).

    1. teacher targets T(x), T(z), T(x_down) (eval mode by default, no gradient);
    2. step A: grads of L_A = w_pix |S(x) - y| + w_kd |S(x) - T(x)|; optimizer step;
    3. step B: grads of L_B (zoom-in with label consistency, zoom-out) at the updated weights;
       optimizer step with g_A + g_B (the released code does not zero the gradients between the
       steps; ``dukd.zero_grad_between_steps: true`` steps with g_B alone).

Inputs ``(lrs, moms, wds, lq, gt, z, masks)`` (see common/sr_task.py); outputs the summed loss and
the components (pix, kd, zoom_in, zoom_out_pix, zoom_out_kd). The LR-scheduler value is the same
for both steps (BasicSR steps its scheduler once per iteration); Adam's step count advances twice.
"""
import mindspore as ms
from mindspore import nn, ops

from ms_models.engine.train_step import _scale_grad, clip_by_global_norm

from .resize import MatlabResize
from .upcycling import StepALoss, StepBLoss, flatten_cells

_add = ops.MultitypeFuncGraph("add_grads")


@_add.register("Tensor", "Tensor")
def _add_fn(a, b):
    return a + b


class DUKDTrainStep(nn.Cell):
    """``step(lrs, moms, wds, lq, gt, z, masks) -> (loss, components)``; see the module docstring.

    Args:
        task: the DUKD task (``teacher``, ``opts``, ``scale``, ``lr_patch``).
        model: the student (``task.model``); optimizer: over its trainable parameters.
        grad_clip: max global norm of each step's gradient (0 = off); as torch's in-place clipping,
            the clipped g_A is the one carried into step B.
        loss_scale: a ``DynamicLossScale`` or None; a non-finite step is skipped.
        world: data-parallel size (> 1 averages gradients and the reported losses).
    """

    def __init__(self, task, model, optimizer, grad_clip=0.0, loss_scale=None, world=1):
        super().__init__(auto_prefix=False)
        opts = task.opts
        self.model, self.teacher, self.optimizer = model, task.teacher, optimizer
        self.weights = optimizer.parameters
        self.loss_a, self.loss_b = StepALoss(model, opts), StepBLoss(model, opts)
        self.grad_a = ms.value_and_grad(self.loss_a, None, self.weights, has_aux=True)
        self.grad_b = ms.value_and_grad(self.loss_b, None, self.weights, has_aux=True)
        self.zoom_out = bool(opts.zoom_out)
        self.carry = not opts.zero_grad_between_steps
        self.down = MatlabResize((task.lr_patch, task.lr_patch), 1.0 / task.scale)
        self.grad_clip = float(grad_clip)
        self.loss_scale = loss_scale
        self.world = int(world)
        if self.world > 1:
            self.reducer = nn.DistributedGradReducer(self.weights, mean=True, degree=self.world)
            self.all_reduce = ops.AllReduce()
        self.hyper_map = ops.HyperMap()

    def _grads(self, grads):
        if self.world > 1:
            grads = self.reducer(grads)
        if self.loss_scale is not None:
            grads = self.hyper_map(ops.partial(_scale_grad, 1.0 / self.loss_scale.scale_value), grads)
        return grads

    def _clip(self, grads):
        return clip_by_global_norm(grads, self.grad_clip) if self.grad_clip > 0 else grads

    def _update(self, grads, finite, lrs, moms, wds):
        if self.loss_scale is None:
            return ops.depend(lrs, self.optimizer(grads, lrs, moms, wds))
        if finite:
            lrs = ops.depend(lrs, self.optimizer(grads, lrs, moms, wds))
        return lrs

    def construct(self, lrs, moms, wds, lq, gt, z, masks):
        z, masks = flatten_cells(z), flatten_cells(masks)
        lq_down = self.down(lq)
        t_lq = ops.stop_gradient(self.teacher(lq))
        t_z = ops.stop_gradient(self.teacher(z))
        t_down = ops.stop_gradient(self.teacher(lq_down)) if self.zoom_out else lq_down
        scale = ops.ones((), ms.float32) if self.loss_scale is None else self.loss_scale.scale_value
        outs_a, ga = self.grad_a(scale, lq, gt, t_lq)
        ga = self._clip(self._grads(ga))
        finite_a = ms.amp.all_finite(ga) if self.loss_scale is not None else None
        lrs = self._update(ga, finite_a, lrs, moms, wds)
        z = ops.depend(z, lrs)
        outs_b, gb = self.grad_b(scale, z, masks, lq, lq_down, t_z, t_down)
        gb = self._grads(gb)
        g = self._clip(self.hyper_map(_add, ga, gb) if self.carry else gb)
        finite = None
        if self.loss_scale is not None:
            finite = ops.logical_and(finite_a, ms.amp.all_finite(g))
            lrs = ops.depend(lrs, self.loss_scale(finite))
        lrs = self._update(g, finite, lrs, moms, wds)
        loss = ops.depend(outs_a[1] + outs_b[1], lrs)
        comps = ops.concat((outs_a[2], outs_b[2]))
        if self.world > 1:
            loss = self.all_reduce(loss) / self.world
            comps = self.all_reduce(comps) / self.world
        return loss, comps
