"""RPG task for the PyTorch engine (twin of ``ms_models/rpg/task.py``).

Classification data and cross-entropy as in ``pt_reference.classification.task`` (label smoothing
through ``aug.label_smoothing``), a network from the registry with masks attached
(``masks.attach_masks``), the RPG train step (``build_train_step``) and the mask-update schedule in
``after_step``. ``evaluate`` adds the exact sparsity and rank report to top-1/top-5.
"""
import torch

from common.metrics.classification import TopKAccuracy
from common.weights import convert_state_dict, read_weights
from pt_reference.classification.task import ClassificationTask
from pt_reference.registry import create_model, register_model
from pt_reference.utils.weights import load_numpy_state, state_numpy, target_shapes

from .masks import attach_masks, is_rpg_state_key, strip_rpg_state
from .pruner import RigLPruner
from .report import build_report, write_report
from .schedule import schedule_from_config
from .train_step import RPGTrainStep


@register_model
def rpg_sparse(base="resnet50", **kwargs):
    """The registered network ``base`` with RPG masks and step counter (its checkpoint layout)."""
    return attach_masks(create_model(base, **kwargs))


def decay_group_of(name, rule):
    """'no_decay' or 'decay' for a non-prunable parameter under ``rpg.wd_rule``."""
    if rule == "bn_name":  # official: no weight decay on parameters whose name contains "bn"
        return "no_decay" if "bn" in name else "decay"
    return "no_decay"  # norm_bias: every non-prunable parameter is a norm scale/shift or a bias


def check_config(cfg):
    if cfg.ema.enabled:
        raise ValueError("configs/rpg: ema.enabled must be false; an EMA of pruned weights has no exact zeros "
                         "(the masks change during training)")


def load_pretrained(model, path):
    """Dense weights (PyTorch or MindSpore names; masks optional) into ``model``; masks stay."""
    state = read_weights(path)
    shapes = {k: v for k, v in target_shapes(model).items() if not is_rpg_state_key(k)}
    direction = "ms2pt" if str(path).endswith(".ckpt") else "pt2ms"
    state = strip_rpg_state(state)
    if direction == "ms2pt":
        state = convert_state_dict(state, shapes, "ms2pt")
    full = state_numpy(model)
    full.update(state)
    load_numpy_state(model, full, strict=True)


class RPGTask(ClassificationTask):
    """Model, data, pruner and loss of one RPG run, built from a config: the classification task's
    data, batches and cross-entropy, with masks on the network and the RPG step and schedule."""

    loss_names = ("ce", "rank")
    build_train_step = RPGTrainStep

    def __init__(self, cfg):
        check_config(cfg)
        super().__init__(cfg)
        self.model = attach_masks(self.model)
        if cfg.rpg.pretrained_weights:
            load_pretrained(self.model, cfg.rpg.pretrained_weights)
        total = int(cfg.train.epochs) * self.steps_per_epoch()
        self.pruner = RigLPruner(self.model, schedule_from_config(cfg, total))
        if self.pruner.schedule.final_density_step() is None:
            sched = self.pruner.schedule
            print(f"[rpg] warning: with {total} iterations, rpg.delta={sched.delta} and rpg.t_end_percent="
                  f"{sched.t_end_percent}, the update reaching sparsity {sched.sparsity} would run at step "
                  f"{(sched.update_times + 1) * sched.delta} >= T_end={sched.t_end}; the run ends less sparse. "
                  "Raise rpg.t_end_percent or lower rpg.delta.")

    def param_groups(self, model):
        """``prunable`` (conv/fc weights, decayed), then ``decay`` and ``no_decay`` by ``rpg.wd_rule``."""
        wd = float(self.cfg.optim.weight_decay)
        prunable = {id(w) for w in self.pruner.weights}
        groups = {"decay": [], "no_decay": []}
        for name, p in model.named_parameters():
            if p.requires_grad and id(p) not in prunable:
                groups[decay_group_of(name, self.cfg.rpg.wd_rule)].append(p)
        return [{"name": "prunable", "params": list(self.pruner.weights), "weight_decay": wd},
                {"name": "decay", "params": groups["decay"], "weight_decay": wd},
                {"name": "no_decay", "params": groups["no_decay"], "weight_decay": 0.0}]

    def after_step(self, step):
        """Store the step count in the model; run the mask update when the schedule says so."""
        self.pruner.set_steps_done(step)
        if self.pruner.schedule.is_update(step):
            info = self.pruner.update(step)
            target = info["density_target"]
            print(f"[rpg] step {step}: mask update ({'target density %.5f' % target if target is not None else 'RigL only'}, "
                  f"drop fraction {info['drop_fraction']:.4f}), global sparsity {self.pruner.global_sparsity():.5f}")

    def sparsity_report(self):
        names = self.pruner.names
        weights = [(n, w.detach().cpu().numpy()) for n, w in zip(names, self.pruner.weights)]
        return build_report(weights, self.pruner.is_linear, float(self.cfg.rpg.partial_k),
                            float(self.cfg.rpg.rank_tol))

    @torch.no_grad()
    def evaluate(self, model, run_dir=None):
        """Top-1/top-5 (percent), exact global sparsity, mean k and numerical rank; report files in ``run_dir``."""
        was_training = model.training
        model.eval()
        acc = TopKAccuracy((1, 5))
        try:
            for images, labels in self.data.val:
                acc.update(model(torch.from_numpy(images)).float().numpy(), labels)
        finally:
            model.train(was_training)
        rep = self.sparsity_report()
        if run_dir is not None:
            write_report(rep, run_dir, title=f"pt {self.cfg.model.name}")
        return {**acc.compute(), "sparsity": rep["global_sparsity"], "mean_k": rep["mean_k"],
                "mean_numerical_rank": rep["mean_numerical_rank"], "primary": "top1"}


def build_task(cfg):
    return RPGTask(cfg)
