"""RPG train step for the MindSpore engine (``task.build_train_step``; twin of
``pt_reference/rpg/train_step.py``).

One call = one iteration ``s`` (``s`` = the model's ``rpg_step``). ``schedule.kind(s)`` picks one of
at most three compiled ``RPGStepCell`` variants (rank loss on/off, dense-gradient accumulation
on/off, optimizer step on/off), so the SVDs of the rank loss are traced only into the iterations
that use them:
  loss = CE (+ lamb * rank loss); gradients; data-parallel mean; dense gradients of the prunable
  weights accumulated; gradients multiplied by the masks; unless it is the iteration before a mask
  update, the optimizer steps and momentum buffers, then weights are multiplied by the masks.
The mask update itself runs in ``task.after_step``.
"""
import mindspore as ms
from mindspore import ParameterTuple, Tensor, nn, ops

from ms_models.engine.train_step import _scale_grad, clip_by_global_norm

from .rank_loss import rank_loss

_accumulate = ops.MultitypeFuncGraph("rpg_accumulate")
_mask_grad = ops.MultitypeFuncGraph("rpg_mask_grad")


@_accumulate.register("Tensor", "Tensor", "Tensor")
def _accumulate_fn(inv_n, acc, grad):
    return ops.assign(acc, acc + grad.astype(acc.dtype) * inv_n)


@_mask_grad.register("Tensor", "Tensor")
def _mask_grad_fn(mask, grad):
    return grad * mask.astype(grad.dtype)


class _RPGLoss(nn.Cell):
    """``(total * scale, total, [ce, rank])`` with ``total = ce + lamb * rank`` when ``with_rank``."""

    def __init__(self, task, model, conv_weights, with_rank, scale=None):
        super().__init__(auto_prefix=False)
        r = task.cfg.rpg
        self.task = task
        self.model = model
        self.conv_weights = conv_weights
        self.with_rank = bool(with_rank)
        self.lamb = float(r.lamb)
        self.partial_k = float(r.partial_k)
        self.thres = float(r.sparsity_thres)
        self.scale = scale

    def construct(self, *batch):
        ce, _ = self.task.forward_loss(self.model, *batch)
        ce = ce.astype(ms.float32)
        if self.with_rank:
            rank, _ = rank_loss(self.conv_weights, self.partial_k, self.thres)
            total = ce + self.lamb * rank
        else:
            rank = ops.zeros_like(ce)
            total = ce
        scaled = total if self.scale is None else total * self.scale
        return scaled, total, ops.stack([ce, rank])


class RPGStepCell(nn.Cell):
    """One compiled iteration of a fixed ``StepKind`` (see the module docstring)."""

    def __init__(self, task, model, optimizer, kind, grad_clip=0.0, loss_scale=None, world=1):
        super().__init__(auto_prefix=False)
        pruner = task.pruner
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.n_prunable = len(pruner.weights)
        self.prunable = ParameterTuple(list(self.weights)[:self.n_prunable])
        self.masks = pruner.masks
        self.dense_grads = pruner.dense_grads
        bufs = pruner.momentum_buffers(optimizer)
        self.bufs = ParameterTuple(bufs) if bufs else None
        self.accumulate = bool(kind.accumulate)
        self.update = bool(kind.update)
        self.inv_n = Tensor(1.0 / pruner.schedule.grad_accumulation_n, ms.float32)
        self.loss_scale = loss_scale
        conv = ParameterTuple(pruner.conv_weights)
        self.loss_cell = _RPGLoss(task, model, conv, kind.rank, None if loss_scale is None else loss_scale.scale_value)
        self.grad_fn = ms.value_and_grad(self.loss_cell, None, self.weights, has_aux=True)
        self.grad_clip = float(grad_clip)
        self.world = int(world)
        self.hyper_map = ops.HyperMap()
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
            grads = self.hyper_map(ops.partial(_scale_grad, 1.0 / self.loss_scale.scale_value), grads)
            finite = ms.amp.all_finite(grads)
            loss = ops.depend(loss, self.loss_scale(finite))
        head = grads[:self.n_prunable]
        if self.accumulate:
            acc = self.hyper_map(ops.partial(_accumulate, self.inv_n), self.dense_grads, head)
            loss = ops.depend(loss, acc)
        head = self.hyper_map(_mask_grad, self.masks, head)
        grads = head + grads[self.n_prunable:]
        if self.grad_clip > 0:
            grads = clip_by_global_norm(grads, self.grad_clip)
        if self.update:
            if self.loss_scale is not None:
                if finite:
                    loss = ops.depend(loss, self._step_and_mask(grads, lrs, moms, wds))
            else:
                loss = ops.depend(loss, self._step_and_mask(grads, lrs, moms, wds))
        return loss, comps

    def _step_and_mask(self, grads, lrs, moms, wds):
        done = self.optimizer(grads, lrs, moms, wds)
        out = done
        for i in range(self.n_prunable):
            m = self.masks[i]
            if self.bufs is not None:
                out = ops.depend(out, ops.assign(self.bufs[i], ops.depend(self.bufs[i], done) * m))
            out = ops.depend(out, ops.assign(self.prunable[i], ops.depend(self.prunable[i], done) * m))
        return out


class RPGTrainStep:
    """``step(lrs, moms, wds, *batch) -> (loss, [ce, rank])`` with the engine's TrainStep signature;
    dispatches to the compiled ``RPGStepCell`` of the iteration's ``StepKind``."""

    def __init__(self, task, model, optimizer, grad_clip=0.0, loss_scale=None, world=1):
        self.task, self.model, self.optimizer = task, model, optimizer
        self.pruner = task.pruner
        self.pruner.optimizer = optimizer
        self.options = {"grad_clip": grad_clip, "loss_scale": loss_scale, "world": world}
        self.cells = {}

    def cell(self, kind):
        if kind not in self.cells:
            self.cells[kind] = RPGStepCell(self.task, self.model, self.optimizer, kind, **self.options)
        return self.cells[kind]

    def __call__(self, lrs, moms, wds, *batch):
        kind = self.pruner.schedule.kind(self.pruner.steps_done())
        return self.cell(kind)(lrs, moms, wds, *batch)
