"""PyTorch trainer: ``Trainer(task, cfg, run_dir).fit(resume=None) -> dict`` (the mirror of
ms_models/engine/trainer.py; the loop itself is common.train_loop.TrainLoop)."""
import base64
import contextlib

import numpy as np
import torch

from common.train_loop import TrainLoop
from pt_reference.engine.checkpoint import load_state, save_state
from pt_reference.engine.device import world_info
from pt_reference.engine.ema import EMA
from pt_reference.engine.optim import build_optimizer
from pt_reference.engine.param_groups import check_param_groups
from pt_reference.engine.train_step import TrainStep


class Trainer(TrainLoop):
    """Train ``task`` with the engine options of ``cfg`` (train/optim/schedule/ema sections).

    Args:
        task, cfg, run_dir: as in ``ms_models.engine.Trainer``.
        device: a ``torch.device`` (default: the device of the model's first parameter).
    """
    framework = "pt"
    ckpt_suffix = ".pt"

    def __init__(self, task, cfg, run_dir, device=None):
        self.device = device or next(task.model.parameters()).device
        super().__init__(task, cfg, run_dir)

    def _world(self):
        return world_info()

    def _setup(self):
        o, task, model = self.opts, self.task, self.task.model
        model.to(self.device).train()
        self.amp_level, dynamic = o.resolved_amp("GPU" if self.device.type == "cuda" else "CPU")
        if self.amp_level != "O0" and self.device.type != "cuda":
            raise ValueError(f"train.amp_level {self.amp_level}: the PyTorch reference uses mixed precision "
                             "on CUDA only; set train.amp_level=O0 on CPU")
        autocast_dtype = torch.float16 if self.amp_level != "O0" else None
        groups = check_param_groups(task.param_groups(model), model)
        self.optimizer = build_optimizer(groups, o)
        self.scaler = (torch.amp.GradScaler(self.device.type, init_scale=o.loss_scale_init,
                                            growth_interval=o.loss_scale_window) if dynamic else None)
        make_step = getattr(task, "build_train_step", None) or TrainStep
        self.step_fn = make_step(task, model, self.optimizer, grad_clip=o.grad_clip, scaler=self.scaler,
                                 autocast_dtype=autocast_dtype, world=self.world)
        self.ema = EMA(model) if o.ema else None
        return [{"name": g["name"], "weight_decay": float(g["weight_decay"]),
                 "lr_scale": float(g.get("lr_scale", 1.0)), "warmup_start_lr": g.get("warmup_start_lr"),
                 "size": len(g["params"])} for g in groups]

    def _describe(self):
        return (f"device {self.device}, amp {self.amp_level}, loss scale "
                f"{'dynamic' if self.scaler is not None else 'off'}, eager train step, optimizer "
                f"{self.opts.optimizer}, EMA {'on' if self.ema is not None else 'off'}")

    def _train_step(self, batch, lrs, moms, wds, ema_d):
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in batch]
        loss, comps = self.step_fn(lrs, moms, wds, *tensors)
        if self.ema is not None:
            self.ema.update(self.task.model, ema_d)
        return float(loss), comps.cpu().numpy()

    def _save_checkpoint(self, path, meta):
        payload = {"model": self.task.model.state_dict(),
                   "ema": self.ema.shadow if self.ema is not None else None,
                   "optim": self.optimizer.state_dict(),
                   "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        save_state(path, payload, meta)

    def _load_checkpoint(self, path):
        payload, meta = load_state(path)
        if meta.get("framework") != "pt":
            raise ValueError(f"{path}: not a PyTorch training checkpoint (meta framework={meta.get('framework')!r})")
        if meta.get("groups") != [g["name"] for g in self.groups]:
            raise ValueError(f"{path}: param groups {meta.get('groups')} differ from this run's "
                             f"{[g['name'] for g in self.groups]}")
        self.task.model.load_state_dict(payload["model"], strict=True)
        if self.ema is not None:
            if not payload.get("ema"):
                raise ValueError(f"{path}: no EMA state but train.ema is on")
            missing = set(self.ema.shadow) ^ set(payload["ema"])
            if missing:
                raise ValueError(f"{path}: EMA keys differ from the model's: {sorted(missing)}")
            with torch.no_grad():
                for k, v in payload["ema"].items():
                    self.ema.shadow[k].copy_(v)
        self.optimizer.load_state_dict(payload["optim"])
        if self.scaler is not None:
            if payload.get("scaler"):
                self.scaler.load_state_dict(payload["scaler"])
            else:
                self.log.warning(f"{path} has no loss-scale state; starting from train.loss_scale_init")
        return meta

    def _evaluate(self):
        model = self.task.model
        model.eval()
        swap = self.ema.swapped(model) if self.ema is not None else contextlib.nullcontext()
        try:
            with swap, torch.no_grad():
                return self.task.evaluate(model, self.run_dir)
        finally:
            model.train()

    def _framework_rng_state(self):
        return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")

    def _set_framework_rng_state(self, state):
        if state is not None:
            torch.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state), np.uint8).copy()))
