"""One optimizer step (the mirror of ms_models/engine/train_step.py): forward and loss, backward,
data-parallel gradient mean, loss-scale unscale, clipping by global norm, optimizer update."""
import numpy as np
import torch
import torch.distributed as dist

from pt_reference.engine.optim import set_hyperparams


def _stack_components(comps):
    if isinstance(comps, (tuple, list)):
        return torch.stack([c.detach().reshape(()).float() for c in comps])
    return comps.detach().reshape(-1).float()


class TrainStep:
    """``step(lrs, moms, wds, *batch) -> (loss, components)`` as float32 tensors, averaged over ranks.

    Args:
        task, model, optimizer: as in the MindSpore twin.
        grad_clip: max global gradient norm (0 = off), ``torch.nn.utils.clip_grad_norm_``.
        scaler: a ``torch.amp.GradScaler`` or None; ``autocast_dtype`` enables autocast.
        world: data-parallel size (> 1 all-reduces gradients and the reported loss, mean).
    """

    def __init__(self, task, model, optimizer, grad_clip=0.0, scaler=None, autocast_dtype=None, world=1):
        self.task, self.model, self.optimizer = task, model, optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.grad_clip = float(grad_clip)
        self.scaler = scaler
        self.autocast_dtype = autocast_dtype
        self.world = int(world)

    def __call__(self, lrs, moms, wds, *batch):
        device_type = batch[0].device.type
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss, comps = self.task.forward_loss(self.model, *batch)
        loss = loss.float()
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        report = torch.cat([loss.detach().reshape(1), _stack_components(comps)])
        if self.world > 1:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad /= self.world
            dist.all_reduce(report)
            report /= self.world
        set_hyperparams(self.optimizer, np.asarray(lrs), np.asarray(moms), np.asarray(wds))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return report[0], report[1:]
