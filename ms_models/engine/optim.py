"""SGD and AdamW with torch semantics, for use inside a compiled train step.

Each optimizer is a Cell over parameter groups; ``construct(grads, lrs, moms, wds)`` takes the
per-group lr, momentum and weight decay as float32 tensors of shape [groups], so a schedule changes
them every iteration without recompiling. ``grads`` is a tuple in ``optimizer.parameters`` order
(group by group). ``nn.AdamWeightDecay`` is not used: it has no bias correction.

torch.optim.SGD (dampening 0):  g += wd p;  b = mu b + g;  p -= lr (g + mu b if nesterov else b)
torch.optim.AdamW:  p *= 1 - lr wd;  m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2;
                    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

_sgd = ops.MultitypeFuncGraph("sgd_update")
_sgd_nesterov = ops.MultitypeFuncGraph("sgd_nesterov_update")
_adamw = ops.MultitypeFuncGraph("adamw_update")


@_sgd.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _sgd_update(lr, momentum, weight_decay, param, buf, grad):
    grad = grad + weight_decay * param
    new_buf = momentum * buf + grad
    ops.assign(buf, new_buf)
    return ops.assign(param, (param - lr * new_buf).astype(param.dtype))


@_sgd_nesterov.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _sgd_nesterov_update(lr, momentum, weight_decay, param, buf, grad):
    grad = grad + weight_decay * param
    new_buf = momentum * buf + grad
    ops.assign(buf, new_buf)
    return ops.assign(param, (param - lr * (grad + momentum * new_buf)).astype(param.dtype))


@_adamw.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                 "Tensor", "Tensor", "Tensor", "Tensor")
def _adamw_update(lr, weight_decay, one_minus_beta1, beta2, one_minus_beta2, eps, bias_c1, bias_c2_sqrt,
                  param, exp_avg, exp_avg_sq, grad):
    decayed = param * (1.0 - lr * weight_decay)
    m = exp_avg + (grad - exp_avg) * one_minus_beta1
    v = exp_avg_sq * beta2 + grad * grad * one_minus_beta2
    ops.assign(exp_avg, m)
    ops.assign(exp_avg_sq, v)
    denom = ops.sqrt(v) / bias_c2_sqrt + eps
    return ops.assign(param, (decayed - (lr / bias_c1) * (m / denom)).astype(param.dtype))


class _GroupedOptimizer(nn.Cell):
    """Holds the parameters of all groups in one tuple, group after group.

    Args:
        groups: list of dicts with ``params`` (list of Parameters); the other keys are read by the
            engine, not here.
    """

    def __init__(self, groups):
        super().__init__(auto_prefix=False)
        params, bounds, start = [], [], 0
        for g in groups:
            params += list(g["params"])
            bounds.append((start, start + len(g["params"])))
            start += len(g["params"])
        self.parameters = ParameterTuple(params)
        self.bounds = tuple(bounds)
        self.hyper_map = ops.HyperMap()

    def state_parameters(self):
        """The optimizer's own state (moment buffers, step count) as a list of Parameters."""
        raise NotImplementedError


class SGD(_GroupedOptimizer):
    """torch.optim.SGD (momentum, optional nesterov, dampening 0, L2 weight decay on the gradient)."""

    def __init__(self, groups, nesterov=False):
        super().__init__(groups)
        self.nesterov = bool(nesterov)
        self.momentum_buf = self.parameters.clone(prefix="momentum_buf", init="zeros")

    def state_parameters(self):
        return list(self.momentum_buf)

    def construct(self, grads, lrs, moms, wds):
        fn = _sgd_nesterov if self.nesterov else _sgd
        done = ()
        for g in range(len(self.bounds)):
            s, e = self.bounds[g]
            done += self.hyper_map(ops.partial(fn, lrs[g], moms[g], wds[g]),
                                   self.parameters[s:e], self.momentum_buf[s:e], grads[s:e])
        return done


class AdamW(_GroupedOptimizer):
    """torch.optim.AdamW (decoupled weight decay, bias correction; ``moms`` is ignored)."""

    def __init__(self, groups, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(groups)
        # 1 - beta and the bias corrections are formed in float64 as torch does on the host; in
        # float32, 1 - 0.999 is off by 1.3e-5 relative.
        self.beta1_f64 = Tensor(np.float64(betas[0]))
        self.beta2_f64 = Tensor(np.float64(betas[1]))
        self.one_minus_beta1 = Tensor(np.float32(1.0 - betas[0]))
        self.one_minus_beta2 = Tensor(np.float32(1.0 - betas[1]))
        self.beta2 = Tensor(np.float32(betas[1]))
        self.eps = Tensor(np.float32(eps))
        self.exp_avg = self.parameters.clone(prefix="exp_avg", init="zeros")
        self.exp_avg_sq = self.parameters.clone(prefix="exp_avg_sq", init="zeros")
        self.step_count = Parameter(Tensor(np.float32(0)), name="adamw_step", requires_grad=False)

    def state_parameters(self):
        return list(self.exp_avg) + list(self.exp_avg_sq) + [self.step_count]

    def construct(self, grads, lrs, moms, wds):
        t = self.step_count + 1.0
        ops.assign(self.step_count, t)
        t64 = t.astype(ms.float64)
        bias_c1 = (1.0 - ops.pow(self.beta1_f64, t64)).astype(ms.float32)
        bias_c2_sqrt = ops.sqrt(1.0 - ops.pow(self.beta2_f64, t64)).astype(ms.float32)
        done = ()
        for g in range(len(self.bounds)):
            s, e = self.bounds[g]
            done += self.hyper_map(ops.partial(_adamw, lrs[g], wds[g], self.one_minus_beta1, self.beta2,
                                               self.one_minus_beta2, self.eps, bias_c1, bias_c2_sqrt),
                                   self.parameters[s:e], self.exp_avg[s:e], self.exp_avg_sq[s:e], grads[s:e])
        return done


def build_optimizer(groups, opts):
    """The optimizer named by ``opts.optimizer`` ('sgd' | 'adamw') over ``groups``."""
    if opts.optimizer == "sgd":
        return SGD(groups, nesterov=opts.nesterov)
    if opts.optimizer == "adamw":
        return AdamW(groups, betas=tuple(opts.betas), eps=opts.eps)
    raise ValueError(f"train.optimizer: unknown optimizer '{opts.optimizer}' (sgd, adamw)")


def hyper_tensors(lrs, moms, wds):
    """float32 tensors of shape [groups] from host arrays (the compiled step's inputs)."""
    return tuple(Tensor(np.asarray(a, np.float32)) for a in (lrs, moms, wds))
