"""OFA-KD distillation task for the PyTorch engine: the twin of ``ms_models.ofakd.task``."""
import numpy as np
import torch

from common.data.classification import ClassificationData
from common.metrics.classification import TopKAccuracy
from common.weights import read_weights, write_weights
from pt_reference.registry import create_model
from pt_reference.utils.weights import load_ms_state_into, load_numpy_state, state_numpy

from .config import distiller_kwargs, is_no_decay, teacher_cache_path, teacher_pretrain_config, weights_are_native
from .distiller import OFADistiller


def load_weights(module, path):
    """Load ``path`` (PyTorch/timm or MindSpore naming, detected from the keys) strictly into ``module``."""
    state = read_weights(str(path))
    names = [k for k in module.state_dict() if not k.endswith("num_batches_tracked")]
    if weights_are_native(state, names):
        own = module.state_dict()
        for k in own:
            if k.endswith("num_batches_tracked") and k not in state:
                state[k] = np.zeros((), np.int64)
        load_numpy_state(module, state)
    else:
        load_ms_state_into(module, state)


def pretrain_teacher(cfg, num_classes):
    """Train the teacher with CE on the task data (engine ``Trainer``), cache and return its weights file."""
    from pt_reference.classification.task import ClassificationTask
    from pt_reference.engine import Trainer

    path = teacher_cache_path(cfg, "pt")
    if path.exists():
        print(f"[ofakd] reusing the pre-trained teacher {path}")
        return path
    tcfg = teacher_pretrain_config(cfg, num_classes)
    task = ClassificationTask(tcfg)
    run_dir = path.parent / (path.stem + "_run")
    print(f"[ofakd] model.teacher_checkpoint is null: training the teacher {cfg.model.teacher} for "
          f"{tcfg.train.epochs} epochs first ({run_dir})")
    metrics = Trainer(task, tcfg, run_dir).fit()
    print(f"[ofakd] teacher metrics: {metrics}")
    write_weights(str(path), state_numpy(task.model))
    return path


class OFAKDTask:
    """Distiller, data and loss of one OFA-KD (or CE / vanilla-KD baseline) run, built from a config."""

    loss_names = ("gt", "kd", "ofa")

    def __init__(self, cfg):
        self.cfg = cfg
        self.data = ClassificationData(cfg)
        self.num_classes = self.data.num_classes
        m = cfg.model
        student_kw = {"num_classes": self.num_classes, **(m.student_kwargs or {})}
        if m.drop_path_rate:
            student_kw["drop_path_rate"] = float(m.drop_path_rate)
        student = create_model(m.student, **student_kw)
        teacher = create_model(m.teacher, num_classes=self.num_classes, **(m.teacher_kwargs or {}))
        self.teacher_path = self._teacher_weights()
        if self.teacher_path is not None:
            load_weights(teacher, self.teacher_path)
        if m.student_checkpoint:
            load_weights(student, m.student_checkpoint)
        self.model = OFADistiller(student, teacher, self.num_classes, **distiller_kwargs(cfg))

    def _teacher_weights(self):
        m, t = self.cfg.model, self.cfg.teacher
        if m.teacher_checkpoint:
            return m.teacher_checkpoint
        if t.pretrain_epochs > 0:
            return pretrain_teacher(self.cfg, self.num_classes)
        if not t.allow_random:
            raise ValueError("config: model.teacher_checkpoint is null and teacher.pretrain_epochs is 0; give a "
                             "teacher checkpoint, a pre-training length, or teacher.allow_random=true (tests only)")
        return None

    def steps_per_epoch(self):
        return len(self.data.train)

    def set_epoch(self, epoch):
        self.data.train.set_epoch(epoch)

    def train_batches(self, epoch):
        self.set_epoch(epoch)
        return iter(self.data.train)

    def forward_loss(self, model, images, targets):
        return model(images, targets)

    def param_groups(self, model):
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if is_no_decay(name, p.ndim) else decay).append(p)
        groups = [{"name": "decay", "params": decay, "weight_decay": float(self.cfg.optim.weight_decay)},
                  {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    @torch.no_grad()
    def evaluate(self, model, run_dir=None):
        was_training = model.training
        model.eval()
        student = TopKAccuracy((1, 5))
        branches = [TopKAccuracy((1,)) for _ in model.stages]
        try:
            for images, labels in self.data.val:
                logits, branch = model.branch_logits(torch.from_numpy(images))
                student.update(logits.float().numpy(), labels)
                for acc, z in zip(branches, branch):
                    acc.update(z.float().numpy(), labels)
        finally:
            model.train(was_training)
        out = dict(student.compute())
        for s, acc in zip(model.stages, branches):
            out[f"branch{s}_top1"] = acc.compute()["top1"]
        return {**out, "primary": "top1"}


def build_task(cfg):
    return OFAKDTask(cfg)
