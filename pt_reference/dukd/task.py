"""DUKD task for the PyTorch reference engine (the twin of ms_models/dukd/task.py)."""
import numpy as np
import torch

from common.sr_task import DUKDOptions, SRData, eval_runner, evaluate_sets, tile_options
from common.sr_weights import read_sr_weights
from pt_reference.registry import create_model
from pt_reference.utils.weights import load_ms_state_into, load_numpy_state

from .train_step import DUKDTrainStep
from .upcycling import l1


def load_sr_weights(net, path, param_key="params", source="basicsr", strict=True):
    """Load a BasicSR / original-RCAN / MindSpore checkpoint into ``net`` (see common/sr_weights.py)."""
    state, naming = read_sr_weights(path, param_key, source)
    if naming == "ms":
        load_ms_state_into(net, state, strict=strict)
    else:
        load_numpy_state(net, state, strict)


def build_net(section):
    """The network of a ``model`` / ``teacher`` config section, with its weights when given."""
    net = create_model(section.name, **(section.kwargs or {}))
    if section.weights:
        load_sr_weights(net, section.weights, section.param_key, section.source, section.strict_load)
    return net


class DUKDTask:
    """Model, teacher, data and losses of one SR distillation run, built from a config."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.opts = DUKDOptions.from_config(cfg)
        self.scale, self.lr_patch = int(cfg.data.scale), int(cfg.data.lr_patch)
        self.rng = np.random.default_rng(int(cfg.train.seed))
        self.model = build_net(cfg.model)
        self.teacher = None
        if self.opts.uses_teacher:
            if not cfg.teacher.weights and not cfg.teacher.allow_random:
                raise ValueError("config key 'teacher.weights' is null: a kd/dukd run needs a trained teacher "
                                 "(set teacher.allow_random=true only for tests)")
            self.teacher = build_net(cfg.teacher)
            self.teacher.requires_grad_(False)
            self.teacher.train(not self.opts.teacher_eval)
        self.data = SRData(cfg, self.opts)
        self.loss_names = self.opts.loss_names
        self.build_train_step = DUKDTrainStep if self.opts.method == "dukd" else None
        self._teacher_cache = {}

    def steps_per_epoch(self):
        return self.data.steps_per_epoch()

    def train_batches(self, epoch):
        return self.data.batches(self.rng)

    def forward_loss(self, model, lq, gt):
        """Single-step methods (scratch, kd): ``w_pix |S(x) - y| (+ w_kd |S(x) - T(x)|)``."""
        sr = model(lq)
        pix = self.opts.pix_weight * l1(sr, gt)
        if self.opts.method == "kd":
            teacher = self.teacher.to(lq.device)
            with torch.no_grad():
                t = teacher(lq)
            kd = self.opts.kd_weight * l1(sr, t)
            return pix + kd, (pix, kd)
        return pix, (pix,)

    def param_groups(self, model):
        return [{"name": "student", "params": [p for p in model.parameters() if p.requires_grad],
                 "weight_decay": float(self.cfg.optim.weight_decay)}]

    def window(self, net):
        return int(getattr(net, "window_size", 1))

    def evaluate(self, model, run_dir=None):
        """PSNR/SSIM-Y per eval set and PSNR(student, teacher) (see ``common.sr_task.evaluate_sets``)."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()

        tiling = tile_options(self.cfg, self.window(model))

        def runner(net):
            def run(x):
                with torch.no_grad():
                    return net(torch.from_numpy(x).to(device)).cpu().numpy()
            return eval_runner(run, self.scale, tiling)   # eval.tile: the same tiled protocol as MindSpore

        teacher_mode = self.teacher.training if self.teacher is not None else None
        try:
            if self.teacher is not None:
                self.teacher.to(device).eval()
            e = self.cfg.eval
            return evaluate_sets(self.data.eval_sets, runner(model),
                                 runner(self.teacher) if (self.teacher is not None and e.psnr_vs_teacher) else None,
                                 self.scale, e.crop_border, self.window(model), e.self_ensemble,
                                 self._teacher_cache, e.max_images)
        finally:
            model.train(was_training)
            if self.teacher is not None:
                self.teacher.train(teacher_mode)


def build_task(cfg):
    return DUKDTask(cfg)
