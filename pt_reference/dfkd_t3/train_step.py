"""The alternating DFKD-T3 iteration (PyTorch reference; twin of ``ms_models/dfkd_t3/train_step.py``):
``k_g`` generator steps then ``k_s`` student steps; each sub-step gives gradients only to its own
model's parameters, so ``optimizer.step()`` (which skips parameters without a gradient) updates
only that model, with torch's per-parameter step counts."""
import torch

GENERATOR_PREFIX = "generator"
STUDENT_PREFIX = "student"


class AlternatingStep:
    """``step(lrs, moms, wds, prefix_ids, prefix_mask, labels, gumbel, tau) -> (loss, components)``."""

    def __init__(self, task, model, optimizer, grad_clip=0.0, scaler=None, autocast_dtype=None, world=1, **_):
        if scaler is not None or autocast_dtype is not None:
            raise ValueError("dfkd_t3 trains in float32 without loss scaling: set train.amp=O0, train.loss_scale=none")
        if int(world) > 1:
            raise ValueError("dfkd_t3: data-parallel training is not supported (world size must be 1)")
        self.model, self.optimizer = model, optimizer
        self.k_g, self.k_s = int(task.k_g), int(task.k_s)
        groups = optimizer.param_groups
        self.gen_params = [p for g in groups if g["name"].startswith(GENERATOR_PREFIX) for p in g["params"]]
        self.stu_params = [p for g in groups if g["name"].startswith(STUDENT_PREFIX) for p in g["params"]]
        self.grad_clip = float(grad_clip)

    def _update(self, loss, params, counter, lrs, moms, wds):
        from pt_reference.engine.optim import set_hyperparams
        # an unused parameter gets a zero gradient, as in MindSpore's value_and_grad
        grads = [torch.zeros_like(p) if g is None else g
                 for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True))]
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        set_hyperparams(self.optimizer, lrs, moms, wds)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        counter += 1

    def __call__(self, lrs, moms, wds, prefix_ids, prefix_mask, labels, gumbel, tau):
        t = float(tau[0])
        for k in range(self.k_g):
            surrogate, aux = self.model.generator_objective(prefix_ids, prefix_mask, labels, gumbel[:, k], t)
            self._update(surrogate, self.gen_params, self.model.generator_steps, lrs, moms, wds)
        for k in range(self.k_s):
            kd = self.model.student_objective(prefix_ids, prefix_mask, gumbel[:, self.k_g + k])
            self._update(kd, self.stu_params, self.model.student_steps, lrs, moms, wds)
        comps = torch.stack([a.detach().reshape(()) for a in aux] + [kd.detach().reshape(())]).float()
        return aux[0].detach() + kd.detach(), comps
