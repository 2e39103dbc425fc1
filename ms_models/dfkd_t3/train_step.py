"""The alternating DFKD-T3 iteration as the engine's ``build_train_step`` (docs/dev/CONTRACTS.md):
``k_g`` generator steps, then ``k_s`` student steps, one compiled Cell.

Each sub-step differentiates only its own model's parameters and updates only that model's
parameter groups with the engine optimizer's update rule and state buffers (torch semantics:
parameters without a gradient are not touched). AdamW bias correction uses the model's own step
count (``DFKDT3.generator_steps`` / ``student_steps``, checkpointed with the model), as torch's
per-parameter ``step``.

Batch: ``prefix_ids (B, P) int32, prefix_mask (B, P) int32, labels (B,) int32,
gumbel (B, k_g + k_s, L, N) float32, tau (B,) float32`` (tau is the same value in every row).
Outputs: the loss (last generator objective + last student KD) and the components
``(gen, spec, div, fid, adv, kd)``.
"""
import mindspore as ms
from mindspore import ParameterTuple, nn, ops

from ms_models.engine.optim import AdamW, SGD, _adamw, _sgd, _sgd_nesterov
from ms_models.engine.train_step import clip_by_global_norm

GENERATOR_PREFIX = "generator"
STUDENT_PREFIX = "student"


class _GeneratorLoss(nn.Cell):
    def __init__(self, model):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, prefix_ids, prefix_mask, labels, gumbel, tau):
        return self.model.generator_objective(prefix_ids, prefix_mask, labels, gumbel, tau)


class _StudentLoss(nn.Cell):
    def __init__(self, model):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, prefix_ids, prefix_mask, gumbel):
        return self.model.student_objective(prefix_ids, prefix_mask, gumbel)


def role_group_indices(group_names, prefix):
    """Indices of the optimizer groups whose name starts with ``prefix``."""
    return tuple(i for i, n in enumerate(group_names) if n.startswith(prefix))


class AlternatingStep(nn.Cell):
    """``step(lrs, moms, wds, *batch) -> (loss, components)``; see the module docstring.

    Args:
        task: the DFKD-T3 task (``k_g``, ``k_s``, ``group_names(model)``).
        model: ``DFKDT3``. optimizer: the engine's SGD or AdamW over the task's groups.
        grad_clip: max global norm per sub-step and model (0 = off).
    """

    def __init__(self, task, model, optimizer, grad_clip=0.0, loss_scale=None, world=1, **_):
        super().__init__(auto_prefix=False)
        if loss_scale is not None:
            raise ValueError("dfkd_t3 trains in float32 without loss scaling: set train.amp=O0, train.loss_scale=none")
        if int(world) > 1:
            raise ValueError("dfkd_t3: data-parallel training is not supported (world size must be 1)")
        if not isinstance(optimizer, (AdamW, SGD)):
            raise TypeError(f"dfkd_t3: unsupported optimizer {type(optimizer).__name__} (sgd, adamw)")
        self.model, self.optimizer = model, optimizer
        self.k_g, self.k_s = int(task.k_g), int(task.k_s)
        names = task.group_names(model)
        if len(names) != len(optimizer.bounds):
            raise ValueError(f"dfkd_t3: {len(names)} task groups but the optimizer has {len(optimizer.bounds)}")
        self.gen_groups = role_group_indices(names, GENERATOR_PREFIX)
        self.stu_groups = role_group_indices(names, STUDENT_PREFIX)
        self.gen_weights = self._weights(self.gen_groups)
        self.stu_weights = self._weights(self.stu_groups)
        self.gen_grad = ms.value_and_grad(_GeneratorLoss(model), None, self.gen_weights, has_aux=True)
        self.stu_grad = ms.value_and_grad(_StudentLoss(model), None, self.stu_weights)
        self.grad_clip = float(grad_clip)
        self.is_adamw = isinstance(optimizer, AdamW)
        self.hyper_map = ops.HyperMap()

    def _weights(self, groups):
        params = []
        for g in groups:
            s, e = self.optimizer.bounds[g]
            params += list(self.optimizer.parameters[s:e])
        return ParameterTuple(params)

    def _update(self, grads, groups, counter, lrs, moms, wds):
        if self.grad_clip > 0:
            grads = clip_by_global_norm(grads, self.grad_clip)
        opt = self.optimizer
        if self.is_adamw:
            t = counter + 1.0
            ops.assign(counter, t)
            t64 = t.astype(ms.float64)
            bias_c1 = (1.0 - ops.pow(opt.beta1_f64, t64)).astype(ms.float32)[0]
            bias_c2_sqrt = ops.sqrt(1.0 - ops.pow(opt.beta2_f64, t64)).astype(ms.float32)[0]
        done, offset = (), 0
        for g in groups:
            s, e = opt.bounds[g]
            local = grads[offset:offset + e - s]
            offset += e - s
            if self.is_adamw:
                done += self.hyper_map(ops.partial(_adamw, lrs[g], wds[g], opt.one_minus_beta1, opt.beta2,
                                                   opt.one_minus_beta2, opt.eps, bias_c1, bias_c2_sqrt),
                                       opt.parameters[s:e], opt.exp_avg[s:e], opt.exp_avg_sq[s:e], local)
            else:
                fn = _sgd_nesterov if opt.nesterov else _sgd
                done += self.hyper_map(ops.partial(fn, lrs[g], moms[g], wds[g]),
                                       opt.parameters[s:e], opt.momentum_buf[s:e], local)
        return done

    def construct(self, lrs, moms, wds, prefix_ids, prefix_mask, labels, gumbel, tau):
        t = tau[0]
        gen_loss, aux = 0.0, ()
        for k in range(self.k_g):
            (_, aux), grads = self.gen_grad(prefix_ids, prefix_mask, labels, gumbel[:, k], t)
            gen_loss = ops.depend(aux[0], self._update(grads, self.gen_groups, self.model.generator_steps,
                                                       lrs, moms, wds))
            prefix_ids = ops.depend(prefix_ids, gen_loss)
        kd = 0.0
        for k in range(self.k_s):
            kd, grads = self.stu_grad(prefix_ids, prefix_mask, gumbel[:, self.k_g + k])
            kd = ops.depend(kd, self._update(grads, self.stu_groups, self.model.student_steps, lrs, moms, wds))
            prefix_ids = ops.depend(prefix_ids, kd)
        comps = ops.stack([aux[0], aux[1], aux[2], aux[3], aux[4], kd]).astype(ms.float32)
        return gen_loss + kd, comps
