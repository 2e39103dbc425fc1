"""OFA-KD distillation task for the MindSpore engine (docs/dev/CONTRACTS.md, "Training task").

The model is an ``OFADistiller`` (student with stage taps + frozen teacher + branch projectors);
only student and projector parameters are trained.  Batches are ``(images, targets)`` from
``common.data.classification`` (soft float targets under mixup/smoothing, else int32 indices).
The teacher comes from ``model.teacher_checkpoint`` (timm/PyTorch or MindSpore naming, loaded
strictly); when it is null and ``teacher.pretrain_epochs > 0`` the teacher is first trained with
cross-entropy on the same data (the demo) and cached under ``teacher.cache_dir``.  ``evaluate``
reports the student's top-1/top-5 and the top-1 of every branch (percent); ``evaluate_with`` the
student's top-1/top-5 of an exported student (``ms_models/ofakd/deploy.py``, ``ascend/infer.py``).
"""
import numpy as np
import mindspore as ms

from common.data.classification import ClassificationData
from common.metrics.classification import TopKAccuracy
from common.weights import read_weights, write_weights
from ms_models.registry import create_model
from ms_models.utils.weights import load_numpy_state, load_pt_state_into, state_numpy

from .config import distiller_kwargs, is_no_decay, teacher_cache_path, teacher_pretrain_config, weights_are_native
from .distiller import OFADistiller


def load_weights(net, path):
    """Load ``path`` (MindSpore or PyTorch/timm naming, detected from the keys) strictly into ``net``."""
    state = read_weights(str(path))
    if weights_are_native(state, net.parameters_dict().keys()):
        load_numpy_state(net, state)
    else:
        load_pt_state_into(net, state)


def pretrain_teacher(cfg, num_classes):
    """Train the teacher with CE on the task data (engine ``Trainer``), cache and return its weights file."""
    from ms_models.classification.task import ClassificationTask
    from ms_models.engine import Trainer

    path = teacher_cache_path(cfg, "ms")
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
        """``(loss, (gt, kd, ofa))``; traceable by ``ms.jit`` / GRAPH mode."""
        return model(images, targets)

    def param_groups(self, model):
        """Student and projector parameters (the frozen teacher is absent): ``decay`` and ``no_decay``."""
        decay, no_decay = [], []
        for p in model.trainable_params():
            (no_decay if is_no_decay(p.name, p.ndim) else decay).append(p)
        groups = [{"name": "decay", "params": decay, "weight_decay": float(self.cfg.optim.weight_decay)},
                  {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def evaluate(self, model, run_dir=None):
        """Student top-1/top-5 and each branch's top-1 (percent) on the val split."""
        was_training = model.training
        model.set_train(False)

        def forward(images):
            logits, branch = model.branch_logits(ms.Tensor(images))
            return logits.asnumpy(), [z.asnumpy() for z in branch]
        try:
            return self._accuracy(forward, model.stages)
        finally:
            model.set_train(was_training)

    def evaluate_with(self, predict, run_dir=None):
        """Student top-1/top-5 of any ``predict`` callable (numpy (B, 3, S, S) -> logits (B, K)) on the
        val split, with the same batches and accuracy code as ``evaluate`` (the branches are training
        parts, absent from a deployed student); ``ascend/infer.py`` passes an exported student here."""
        return self._accuracy(lambda images: (predict(images), ()), ())

    def _accuracy(self, forward, stages):
        """Top-1/top-5 of the student logits and top-1 of each branch of ``forward(images) ->
        (logits, branch logits in stages order)`` over the val batches."""
        student = TopKAccuracy((1, 5))
        branches = [TopKAccuracy((1,)) for _ in stages]
        for images, labels in self.data.val:
            logits, branch = forward(images)
            logits = np.asarray(logits, np.float32)
            if logits.shape != (images.shape[0], self.num_classes):
                raise ValueError(f"ofakd evaluation: the student returned logits of shape {logits.shape}, expected "
                                 f"({images.shape[0]}, {self.num_classes}) (batch, classes of data.root)")
            student.update(logits, labels)
            for acc, z in zip(branches, branch):
                acc.update(np.asarray(z, np.float32), labels)
        out = dict(student.compute())
        for s, acc in zip(stages, branches):
            out[f"branch{s}_top1"] = acc.compute()["top1"]
        return {**out, "primary": "top1"}


def build_task(cfg):
    return OFAKDTask(cfg)
