"""RPG train step for the PyTorch engine (``task.build_train_step``; twin of ``ms_models/rpg/train_step.py``).

One call = one iteration ``s`` (``s`` = the model's ``rpg_step``):
  loss = CE (+ lamb * rank loss when ``schedule.kind(s).rank``); backward; data-parallel mean;
  dense gradients of the prunable weights accumulated when ``kind.accumulate``; gradients
  multiplied by the masks; unless ``kind.update`` is False (the iteration before a mask update),
  the optimizer steps and momentum buffers, then weights are multiplied by the masks.
The mask update itself runs in ``task.after_step``.
"""
import numpy as np
import torch
import torch.distributed as dist

from pt_reference.engine.optim import set_hyperparams

from .rank_loss import rank_loss


class RPGTrainStep:
    """``step(lrs, moms, wds, *batch) -> (loss, [ce, rank])`` with the engine's TrainStep signature."""

    def __init__(self, task, model, optimizer, grad_clip=0.0, scaler=None, autocast_dtype=None, world=1):
        self.task, self.model, self.optimizer = task, model, optimizer
        self.pruner = task.pruner
        self.pruner.optimizer = optimizer
        self.schedule = task.pruner.schedule
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.grad_clip = float(grad_clip)
        self.scaler = scaler
        self.autocast_dtype = autocast_dtype
        self.world = int(world)
        self.last_ks = None

    def __call__(self, lrs, moms, wds, *batch):
        kind = self.schedule.kind(self.pruner.steps_done())
        cfg = self.task.cfg.rpg
        self.optimizer.zero_grad(set_to_none=True)
        device_type = batch[0].device.type
        with torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            ce, _ = self.task.forward_loss(self.model, *batch)
        ce = ce.float()
        if kind.rank:
            rank, self.last_ks = rank_loss(self.pruner.conv_weights, float(cfg.partial_k), float(cfg.sparsity_thres))
            loss = ce + float(cfg.lamb) * rank
        else:
            rank, loss = torch.zeros(()), ce
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        report = torch.stack([loss.detach(), ce.detach(), rank.detach().float()])
        if self.world > 1:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad /= self.world
            dist.all_reduce(report)
            report /= self.world
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        with torch.no_grad():
            grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.pruner.weights]
            if kind.accumulate:
                self.pruner.accumulate(grads)
            for w, m in zip(self.pruner.weights, self.pruner.masks):
                if w.grad is not None:
                    w.grad.mul_(m)
        if kind.update:
            set_hyperparams(self.optimizer, np.asarray(lrs), np.asarray(moms), np.asarray(wds))
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.pruner.apply_masks(self.optimizer)
        elif self.scaler is not None:
            self.scaler.update()
        return report[0], report[1:]
