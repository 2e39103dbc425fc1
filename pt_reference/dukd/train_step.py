"""DUKD's training iteration (the engine's ``build_train_step`` hook), the PyTorch reference of
ms_models/dukd/train_step.py: teacher targets under ``no_grad``; step A (zero_grad, L_A backward,
optimizer.step); step B (L_B backward on top of the kept gradients, optimizer.step), as in the
released ``DUKD.optimize_parameters``."""
import numpy as np
import torch
import torch.distributed as dist

from pt_reference.engine.optim import set_hyperparams

from .resize import MatlabResize
from .upcycling import StepALoss, StepBLoss, flatten_cells


class DUKDTrainStep:
    """``step(lrs, moms, wds, lq, gt, z, masks) -> (loss, components)``."""

    def __init__(self, task, model, optimizer, grad_clip=0.0, scaler=None, autocast_dtype=None, world=1):
        if scaler is not None or autocast_dtype is not None:
            raise ValueError("dukd (PyTorch reference): AMP / loss scaling is not supported by the two-step "
                             "iteration; set train.amp=O0")
        opts = task.opts
        self.task, self.model, self.teacher, self.optimizer = task, model, task.teacher, optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.loss_a, self.loss_b = StepALoss(model, opts), StepBLoss(model, opts)
        self.zoom_out = bool(opts.zoom_out)
        self.carry = not opts.zero_grad_between_steps
        device = next(model.parameters()).device
        self.teacher.to(device)
        self.down = MatlabResize((task.lr_patch, task.lr_patch), 1.0 / task.scale).to(device)
        self.grad_clip = float(grad_clip)
        self.world = int(world)

    def _reduce(self):
        if self.world > 1:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def _step(self, lrs, moms, wds):
        set_hyperparams(self.optimizer, np.asarray(lrs), np.asarray(moms), np.asarray(wds))
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()

    def __call__(self, lrs, moms, wds, lq, gt, z, masks):
        z, masks = flatten_cells(z), flatten_cells(masks)
        lq_down = self.down(lq)
        with torch.no_grad():
            t_lq, t_z = self.teacher(lq), self.teacher(z)
            t_down = self.teacher(lq_down) if self.zoom_out else lq_down
        self.optimizer.zero_grad(set_to_none=True)
        la, ca = self.loss_a(lq, gt, t_lq)
        la.backward()
        self._reduce()
        self._step(lrs, moms, wds)
        if not self.carry:
            self.optimizer.zero_grad(set_to_none=True)
        lb, cb = self.loss_b(z, masks, lq, lq_down, t_z, t_down)
        lb.backward()
        self._reduce()
        self._step(lrs, moms, wds)
        report = torch.cat([(la + lb).detach().reshape(1), ca.detach(), cb.detach()]).float()
        if self.world > 1:
            dist.all_reduce(report)
            report /= self.world
        return report[0], report[1:]
