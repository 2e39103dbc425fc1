"""DUKD task for the MindSpore engine (docs/dev/CONTRACTS.md): the student (``model``), the frozen
teacher, the batch stream of ``common.sr_task`` and PSNR/SSIM-Y evaluation.

``dukd.method``: ``scratch`` (L1 only; also how a teacher is trained), ``kd`` (L1 + output KD, the
engine's TrainStep) or ``dukd`` (the two-step iteration of ``train_step.DUKDTrainStep``, supplied
through the ``build_train_step`` hook). The teacher is absent from ``param_groups``, its Parameters
do not require gradients and it runs in eval mode unless ``dukd.teacher_eval`` is false (the
released code keeps it in train mode, which only matters for SwinIR's stochastic depth).

Evaluation (``evaluate_with``, ``evaluate``) super-resolves each LR image whole (``eval.tile`` null,
the published protocol) or in ``eval.tile`` x ``eval.tile`` LR tiles overlapping by
``eval.tile_overlap`` and averaged where they overlap (SwinIR's ``main_test_swinir.py`` tiling;
``tiled_super_resolve``), ``eval.tile_batch`` tiles per call. The exported graph of
``deploy.build_export_net`` has exactly that static tile as its input.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from common.sr_task import DUKDOptions, SRData, eval_runner, evaluate_sets, tile_options
from common.sr_weights import read_sr_weights
from ms_models.registry import create_model
from ms_models.utils.weights import load_numpy_state, load_pt_state_into

from .train_step import DUKDTrainStep
from .upcycling import l1


def load_sr_weights(net, path, param_key="params", source="basicsr", strict=True):
    """Load a BasicSR / original-RCAN / MindSpore checkpoint into ``net`` (see common/sr_weights.py)."""
    state, naming = read_sr_weights(path, param_key, source)
    if naming == "ms":
        load_numpy_state(net, state, strict)
    else:
        load_pt_state_into(net, state, strict=strict)


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
            for p in self.teacher.get_parameters():
                p.requires_grad = False
                p.name = f"teacher.{p.name}"     # unique beside the student's names in a compiled step
            self.teacher.set_train(not self.opts.teacher_eval)
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
            kd = self.opts.kd_weight * l1(sr, ops.stop_gradient(self.teacher(lq)))
            return pix + kd, (pix, kd)
        return pix, (pix,)

    def param_groups(self, model):
        return [{"name": "student", "params": list(model.trainable_params()),
                 "weight_decay": float(self.cfg.optim.weight_decay)}]

    def window(self, net):
        return int(getattr(net, "window_size", 1))

    def tiling(self):
        """``(tile, overlap, batch)`` of ``cfg.eval`` (tile 0: whole images), checked."""
        return tile_options(self.cfg, self.window(self.model))

    def _runner(self, predict):
        """``run(x (1, 3, h, w)) -> (1, 3, sh, sw)`` of the eval protocol around ``predict``."""
        return eval_runner(predict, self.scale, self.tiling())

    def evaluate_with(self, predict, run_dir=None):
        """PSNR/SSIM-Y per eval set of the student ``predict(x float32 (B, 3, h, w)) -> (B, 3, sh, sw)``
        (numpy; an exported graph or the MindSpore model), with the eval protocol of the config
        (tiling, self-ensemble, window padding, Y-channel metrics after ``crop_border``). The teacher
        metrics (``psnr_st``, ``teacher_psnr_y``) are added when the task holds a teacher and
        ``eval.psnr_vs_teacher`` is true (see ``common.sr_task.evaluate_sets``)."""
        e = self.cfg.eval
        run_teacher = None
        teacher_mode = self.teacher.training if self.teacher is not None else None
        if self.teacher is not None and e.psnr_vs_teacher:
            self.teacher.set_train(False)
            run_teacher = self._runner(lambda x: self.teacher(ms.Tensor(x)).asnumpy())
        try:
            return evaluate_sets(self.data.eval_sets, self._runner(predict), run_teacher, self.scale,
                                 e.crop_border, self.window(self.model), e.self_ensemble, self._teacher_cache,
                                 e.max_images)
        finally:
            if self.teacher is not None:
                self.teacher.set_train(teacher_mode)

    def evaluate(self, model, run_dir=None):
        """``evaluate_with`` around the MindSpore ``model`` in eval mode."""
        was_training = model.training
        model.set_train(False)
        try:
            return self.evaluate_with(lambda x: model(ms.Tensor(x)).asnumpy(), run_dir)
        finally:
            model.set_train(was_training)


def build_task(cfg):
    return DUKDTask(cfg)
