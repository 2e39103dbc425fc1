"""MindSpore trainer: ``Trainer(task, cfg, run_dir).fit(resume=None) -> dict``.

The loop, schedule, logging and checkpoint cadence live in ``common.train_loop.TrainLoop``; this
class supplies the MindSpore pieces: AMP, the compiled ``TrainStep``, EMA, checkpoints and RNG.
"""
import base64
import contextlib

import numpy as np
import mindspore as ms
from mindspore import Tensor

from common.train_loop import TrainLoop
from ms_models.engine.checkpoint import assign_arrays, load_state, save_state
from ms_models.engine.device import world_info
from ms_models.engine.ema import EMA
from ms_models.engine.optim import build_optimizer, hyper_tensors
from ms_models.engine.param_groups import check_param_groups
from ms_models.engine.train_step import DynamicLossScale, TrainStep


@contextlib.contextmanager
def graph_mode(enabled=True):
    """Run the enclosed calls in GRAPH mode, then return to the previous mode (PyNative stays the
    default for evaluation and user code)."""
    if not enabled:
        yield
        return
    prev = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=prev)


class Trainer(TrainLoop):
    """Train ``task`` (see docs/dev/CONTRACTS.md) with the engine options of ``cfg``.

    Args:
        task: the family task object.
        cfg: the loaded config (engine sections train/optim/schedule/ema, see common/train_options.py).
        run_dir: run folder (created by rank 0).
        device: 'Ascend' | 'GPU' | 'CPU' (default: MindSpore's current device target).
    """
    framework = "ms"
    ckpt_suffix = ".ckpt"

    def __init__(self, task, cfg, run_dir, device=None):
        self.device = device or ms.get_context("device_target")
        super().__init__(task, cfg, run_dir)

    def _world(self):
        return world_info()

    def _setup(self):
        o, task, model = self.opts, self.task, self.task.model
        self.amp_level, dynamic = o.resolved_amp(self.device)
        if self.amp_level != "O0":
            ms.amp.auto_mixed_precision(model, self.amp_level)
        groups = check_param_groups(task.param_groups(model))
        self.optimizer = build_optimizer(groups, o)
        self.loss_scale = DynamicLossScale(o.loss_scale_init, o.loss_scale_window) if dynamic else None
        # A task with its own update rule (two optimizer steps, alternating models, masks after the
        # update) supplies a step with TrainStep's call signature: (lrs, moms, wds, *batch) -> (loss, comps).
        make_step = getattr(task, "build_train_step", None) or TrainStep
        self.step_cell = make_step(task, model, self.optimizer, grad_clip=o.grad_clip,
                                   loss_scale=self.loss_scale, world=self.world)
        self.ema = EMA(model) if o.ema else None
        model.set_train(True)
        return [{"name": g["name"], "weight_decay": float(g["weight_decay"]),
                 "lr_scale": float(g.get("lr_scale", 1.0)), "warmup_start_lr": g.get("warmup_start_lr"),
                 "size": len(g["params"])} for g in groups]

    def _describe(self):
        return (f"device {self.device}, amp {self.amp_level}, loss scale "
                f"{'dynamic' if self.loss_scale is not None else 'off'}, "
                f"{'GRAPH' if self.opts.graph_mode else 'PyNative'} train step, optimizer {self.opts.optimizer}, "
                f"EMA {'on' if self.ema is not None else 'off'}")

    def _train_step(self, batch, lrs, moms, wds, ema_d):
        tensors = [Tensor(np.ascontiguousarray(a)) for a in batch]
        with graph_mode(self.opts.graph_mode):
            loss, comps = self.step_cell(*hyper_tensors(lrs, moms, wds), *tensors)
            if self.ema is not None:
                self.ema(Tensor(np.float32(ema_d)))
        return float(loss.asnumpy()), comps.asnumpy()

    def _state_arrays(self):
        arrays = {f"model.{p.name}": p.asnumpy() for _, p in self.task.model.parameters_and_names()}
        if self.ema is not None:
            arrays.update({s.name: s.asnumpy() for s in self.ema.shadow})
        arrays.update({f"optim.{p.name}": p.asnumpy() for p in self.optimizer.state_parameters()})
        if self.loss_scale is not None:
            arrays.update({p.name: p.asnumpy() for p in self.loss_scale.get_parameters()})
        return arrays

    def _save_checkpoint(self, path, meta):
        save_state(path, self._state_arrays(), meta)

    def _load_checkpoint(self, path):
        arrays, meta = load_state(path)
        if meta.get("framework") != "ms":
            raise ValueError(f"{path}: not a MindSpore training checkpoint (meta framework={meta.get('framework')!r})")
        if meta.get("groups") != [g["name"] for g in self.groups]:
            raise ValueError(f"{path}: param groups {meta.get('groups')} differ from this run's "
                             f"{[g['name'] for g in self.groups]}")
        assign_arrays([p for _, p in self.task.model.parameters_and_names()], arrays, "model.", path)
        if self.ema is not None:
            assign_arrays(list(self.ema.shadow), arrays, "", path)
        assign_arrays(self.optimizer.state_parameters(), arrays, "optim.", path)
        if self.loss_scale is not None:
            if "loss_scale.value" in arrays:
                assign_arrays(list(self.loss_scale.get_parameters()), arrays, "", path)
            else:
                self.log.warning(f"{path} has no loss-scale state; starting from train.loss_scale_init")
        return meta

    def _evaluate(self):
        model = self.task.model
        model.set_train(False)
        swap = self.ema.swapped() if self.ema is not None else contextlib.nullcontext()
        try:
            with swap:
                return self.task.evaluate(model, self.run_dir)
        finally:
            model.set_train(True)

    def _framework_rng_state(self):
        return base64.b64encode(ms.get_rng_state().asnumpy().tobytes()).decode("ascii")

    def _set_framework_rng_state(self, state):
        if state is not None:
            ms.set_rng_state(Tensor(np.frombuffer(base64.b64decode(state), np.uint8).copy()))
