"""Framework-free training loop shared by ``ms_models.engine.Trainer`` and
``pt_reference.engine.Trainer``.

The loop owns what is identical in both frameworks: the schedule fed every iteration, the data
stream and its RNG bookkeeping for exact resume, data-parallel batch sharding, the non-finite loss
stop, logging, checkpoint cadence, evaluation and the final metrics. A framework subclass
implements the hooks marked "backend".

Resume contract: a checkpoint stores the state of ``task.rng`` (the numpy generator every data
choice is drawn from) as it was at the start of the current epoch, plus the number of batches of
that epoch already trained. Resuming restores that state, calls ``task.set_epoch`` and
``task.train_batches`` again and skips the trained batches, so the data stream is the one the
uninterrupted run saw.
"""
import math
import shutil
import time
from pathlib import Path

import numpy as np

from common.plots import plot_loss_curves
from common.runlog import RunLog, write_json_atomic
from common.schedules import Schedule, ema_decay
from common.train_options import TrainOptions


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and the components."""


def shard_batch(batch, rank, world):
    """Rank ``rank``'s contiguous slice of every array of a global batch (axis 0).

    ``world`` processes each taking B/world samples see together exactly one process's batch of B.
    """
    if world == 1:
        return batch
    out = []
    for i, a in enumerate(batch):
        a = np.asarray(a)
        if a.ndim == 0 or a.shape[0] % world:
            raise ValueError(f"data parallel over {world} processes: batch element {i} has shape {a.shape}; "
                             f"its first axis must be a multiple of {world} (set the global batch size accordingly)")
        n = a.shape[0] // world
        out.append(a[rank * n:(rank + 1) * n])
    return tuple(out)


def _rng_to_json(state):
    if isinstance(state, dict):
        return {k: _rng_to_json(v) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return [_rng_to_json(v) for v in state]
    if isinstance(state, np.ndarray):
        return {"__ndarray__": state.tolist(), "dtype": str(state.dtype)}
    if isinstance(state, np.generic):
        return state.item()
    return state


def _rng_from_json(state):
    if isinstance(state, dict):
        if "__ndarray__" in state:
            return np.asarray(state["__ndarray__"], dtype=state["dtype"])
        return {k: _rng_from_json(v) for k, v in state.items()}
    if isinstance(state, list):
        return tuple(_rng_from_json(v) for v in state)
    return state


def get_data_rng_state(task):
    """JSON-able state of ``task.rng`` (np.random.Generator or RandomState), or None."""
    rng = getattr(task, "rng", None)
    if isinstance(rng, np.random.Generator):
        return _rng_to_json(rng.bit_generator.state)
    if isinstance(rng, np.random.RandomState):
        return _rng_to_json(rng.get_state())
    return None


def set_data_rng_state(task, state):
    if state is None:
        return
    rng = getattr(task, "rng", None)
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = _rng_from_json(state)
    elif isinstance(rng, np.random.RandomState):
        rng.set_state(_rng_from_json(state))
    else:
        raise ValueError("the checkpoint holds a data RNG state but the task has no 'rng' generator to restore it into")


class TrainLoop:
    """``TrainLoop(task, cfg, run_dir).fit(resume=None) -> dict`` of final metrics.

    Subclasses set ``framework`` and ``ckpt_suffix`` and implement the backend hooks.
    """
    framework = None
    ckpt_suffix = None

    def __init__(self, task, cfg, run_dir):
        self.task = task
        self.cfg = cfg
        self.opts = TrainOptions.from_config(cfg)
        self.run_dir = Path(run_dir)
        self.rank, self.world = self._world()
        self.is_main = self.rank == 0
        self.log = RunLog(self.run_dir, enabled=self.is_main)
        self.loss_names = tuple(task.loss_names)
        self.steps_per_epoch = int(task.steps_per_epoch())
        self.groups = self._setup()
        o = self.opts
        self.schedule = Schedule(
            self.groups, lr=o.lr, momentum=o.momentum, scheduler=o.scheduler, epochs=o.epochs,
            steps_per_epoch=self.steps_per_epoch, lrf=o.final_lr_factor(), per_iter=o.per_iter,
            milestones=o.milestones, gamma=o.gamma, warmup_epochs=o.warmup_epochs,
            min_warmup_iters=o.min_warmup_iters, warmup_start_lr=o.warmup_lr, warmup_momentum=o.warmup_momentum)
        self.weight_decays = np.array([g["weight_decay"] for g in self.groups])
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.epoch_rng = None
        self.best = None
        self.saved_step = None

    # ---- backend hooks ---------------------------------------------------------------------
    def _world(self):
        """``(rank, world_size)`` of the data-parallel group ((0, 1) when not distributed)."""
        raise NotImplementedError

    def _setup(self):
        """Build optimizer, EMA and compiled step; return one dict per optimizer group with
        ``name``, ``weight_decay``, ``lr_scale``, ``warmup_start_lr``, ``size`` (tensor count)."""
        raise NotImplementedError

    def _train_step(self, batch, lrs, moms, wds, ema_d):
        """One optimizer step on the numpy ``batch`` (this rank's shard); returns the loss averaged
        over ranks as a float and the components as a float array in ``loss_names`` order."""
        raise NotImplementedError

    def _save_checkpoint(self, path, meta):
        """Write model, EMA, optimizer (and loss-scale) state plus ``meta`` atomically to ``path``."""
        raise NotImplementedError

    def _load_checkpoint(self, path):
        """Restore the state written by ``_save_checkpoint``; return ``meta``."""
        raise NotImplementedError

    def _evaluate(self):
        """``task.evaluate`` on the EMA weights (or the model without EMA), eval mode."""
        raise NotImplementedError

    def _framework_rng_state(self):
        raise NotImplementedError

    def _set_framework_rng_state(self, state):
        raise NotImplementedError

    def _describe(self):
        """One line naming the device, precision and compile mode."""
        return ""

    # ---- loop ------------------------------------------------------------------------------
    @property
    def last_path(self):
        return self.run_dir / f"last{self.ckpt_suffix}"

    @property
    def best_path(self):
        return self.run_dir / f"best{self.ckpt_suffix}"

    def fit(self, resume=None):
        """Train (optionally resuming from checkpoint ``resume``), evaluate, return the metrics."""
        o = self.opts
        self.log.save_config(self.cfg)
        self.log.info(f"{self.framework}: {self._describe()}; world size {self.world}; "
                      f"{self.steps_per_epoch} steps/epoch x {o.epochs} epochs"
                      + (f", stopping after {o.max_steps} steps" if o.max_steps else ""))
        for i, g in enumerate(self.groups):
            self.log.info(f"param group {i} '{g['name']}': {g['size']} tensors, weight_decay {g['weight_decay']}, "
                          f"lr_scale {g['lr_scale']}, warmup_start_lr {g['warmup_start_lr']}")
        resume_skip = 0
        if resume:
            meta = self._load_checkpoint(resume)
            self.step, self.epoch, resume_skip = meta["step"], meta["epoch"], meta["step_in_epoch"]
            self.epoch_rng = meta["data_rng"]
            self.best = meta.get("best")
            self._set_framework_rng_state(meta.get("framework_rng"))
            self.saved_step = self.step
            self.log.truncate_metrics(self.step)
            self.log.info(f"resumed from {resume}: step {self.step}, epoch {self.epoch + 1}, "
                          f"{resume_skip} batches of that epoch already trained")
            if self.epoch_rng is None:
                self.log.info("the task has no 'rng' generator; its batches are assumed to depend only on "
                              "the seed and the epoch")
        total = o.epochs * self.steps_per_epoch
        stop_at = min(total, o.max_steps) if o.max_steps else total
        t_start = time.perf_counter()
        last_loss = None
        while self.epoch < o.epochs and self.step < stop_at:
            epoch_loss = self._run_epoch(resume_skip, stop_at)
            last_loss = epoch_loss if epoch_loss is not None else last_loss
            resume_skip = 0
            if self.step_in_epoch == self.steps_per_epoch:
                self.epoch += 1
                self.step_in_epoch = 0
                self.epoch_rng = get_data_rng_state(self.task)
                if o.save_interval and self.epoch % o.save_interval == 0:
                    self._save("last")
                if o.eval_interval and self.epoch % o.eval_interval == 0 and self.epoch < o.epochs:
                    self._eval_and_track()
                    self._plot()
        if self.saved_step != self.step:
            self._save("last")
        train_time = time.perf_counter() - t_start
        metrics = self._eval_and_track()
        self._plot()
        final = dict(metrics)
        final["train"] = {"framework": self.framework, "steps": self.step, "epochs_done": self.epoch,
                          "final_loss": last_loss, "train_time_s": round(train_time, 3),
                          "best": self.best, "run_dir": str(self.run_dir)}
        self.log.write_final(final)
        if metrics:
            key = metrics.get("primary")
            self.log.info(f"final {key} = {metrics.get(key)} (run folder {self.run_dir})")
        self.log.close()
        return final

    def _run_epoch(self, skip, stop_at):
        task, o = self.task, self.opts
        if skip:
            set_data_rng_state(task, self.epoch_rng)
        else:
            self.epoch_rng = get_data_rng_state(task)
        if hasattr(task, "set_epoch"):
            task.set_epoch(self.epoch)
        batches = iter(task.train_batches(self.epoch))
        bar = self.log.progress(self.steps_per_epoch, skip, f"epoch {self.epoch + 1}/{o.epochs}")
        last_loss = None
        t_prev = time.perf_counter()
        try:
            for i in range(self.steps_per_epoch):
                try:
                    batch = next(batches)
                except StopIteration:
                    raise RuntimeError(f"task.train_batches({self.epoch}) ended after {i} batches, but "
                                       f"task.steps_per_epoch() is {self.steps_per_epoch}") from None
                if i < skip:
                    continue
                global_batch = int(np.shape(batch[0])[0])
                lrs, moms = self.schedule(self.step, self.epoch)
                d = ema_decay(self.step + 1, o.ema_decay, o.ema_tau)
                loss, comps = self._train_step(shard_batch(batch, self.rank, self.world), lrs, moms,
                                               self.weight_decays, d)
                self.step += 1
                self.step_in_epoch = i + 1
                if hasattr(task, "after_step"):
                    task.after_step(self.step)
                named = {n: float(c) for n, c in zip(self.loss_names, comps)}
                if not (math.isfinite(loss) and all(math.isfinite(v) for v in named.values())):
                    self._stop_non_finite(loss, named, i)
                now = time.perf_counter()
                img_s = global_batch / max(now - t_prev, 1e-9)
                t_prev = now
                last_loss = loss
                self.log.log_metrics({"step": self.step, "epoch": self.epoch + 1, "loss": loss, **named,
                                      "lr": {g["name"]: float(v) for g, v in zip(self.groups, lrs)},
                                      "momentum": float(moms[0]), "img_s": round(img_s, 2)})
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lrs[0]:.3g}", img_s=f"{img_s:.1f}")
                if o.log_interval and self.step % o.log_interval == 0:
                    comp_txt = " ".join(f"{k} {v:.4g}" for k, v in named.items())
                    self.log.info(f"step {self.step} epoch {self.epoch + 1} loss {loss:.5g} {comp_txt} "
                                  f"lr {lrs[0]:.4g} {img_s:.1f} img/s")
                if o.save_interval_steps and self.step % o.save_interval_steps == 0 \
                        and self.step_in_epoch < self.steps_per_epoch:
                    self._save("last")
                if self.step >= stop_at:
                    break
        finally:
            bar.close()
            if hasattr(batches, "close"):
                batches.close()
        return last_loss

    def _stop_non_finite(self, loss, named, i):
        comp_txt = ", ".join(f"{k}={v}" for k, v in named.items())
        kept = (f"the last good checkpoint {self.last_path} (step {self.saved_step}) is kept"
                if self.saved_step is not None else "no checkpoint had been written yet")
        msg = (f"non-finite loss at step {self.step} (epoch {self.epoch + 1}, batch {i + 1}): loss={loss}; "
               f"components: {comp_txt}; training stopped and {kept}. Lower optim.lr, set "
               f"train.grad_clip or check the data of this batch.")
        self.log.error(msg)
        self._plot()
        self.log.close()
        raise NonFiniteLossError(msg)

    def _meta(self):
        return {"framework": self.framework, "step": self.step, "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "data_rng": self.epoch_rng,
                "framework_rng": self._framework_rng_state(), "best": self.best,
                "loss_names": list(self.loss_names), "groups": [g["name"] for g in self.groups]}

    def _save(self, which):
        if self.is_main:
            path = self.run_dir / f"{which}{self.ckpt_suffix}"
            meta = self._meta()
            self._save_checkpoint(path, meta)
            write_json_atomic(path.with_suffix(".json"), meta)
        self.saved_step = self.step

    def _eval_and_track(self):
        """Evaluate (rank 0), log the record, update best.ckpt; the data RNG is left untouched."""
        if not self.is_main:
            return {}
        rng_state = get_data_rng_state(self.task)
        metrics = self._evaluate()
        set_data_rng_state(self.task, rng_state)
        if not isinstance(metrics, dict) or "primary" not in metrics or metrics["primary"] not in metrics:
            raise ValueError(f"task.evaluate must return a dict with 'primary' naming one of its keys, got {metrics!r}")
        key = metrics["primary"]
        value = float(metrics[key])
        self.log.log_metrics({"step": self.step, "epoch": self.epoch, "eval": metrics})
        self.log.info(f"eval at step {self.step}: " + ", ".join(
            f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items() if k != "primary"))
        better = (self.best is None or (value > self.best["value"] if self.opts.metric_mode == "max"
                                        else value < self.best["value"]))
        if better and math.isfinite(value):
            self.best = {"metric": key, "value": value, "step": self.step}
            self._save("last")
            _copy_atomic(self.last_path, self.best_path)
            _copy_atomic(self.last_path.with_suffix(".json"), self.best_path.with_suffix(".json"))
        return metrics

    def _plot(self):
        if self.is_main:
            plot_loss_curves(self.log.metrics_path, self.run_dir / "loss_curve.png", self.loss_names,
                             title=f"{self.framework} {self.run_dir.name}")


def _copy_atomic(src, dst):
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    finally:
        if tmp.exists():
            tmp.unlink()
