"""Classification task for the MindSpore engine (see docs/dev/CONTRACTS.md, "Training task").

Batches come from ``common.data.classification`` (numpy, identical for both frameworks):
``(images float32 (B, 3, S, S), targets)`` where targets are soft float32 (B, K) under
mixup/cutmix or label smoothing and int32 (B,) class indices otherwise. The loss is the
cross-entropy against those targets; ``evaluate`` reports top-1/top-5 accuracy in percent.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from common.data.classification import ClassificationData
from common.metrics.classification import TopKAccuracy
from ms_models.registry import create_model


def soft_target_cross_entropy(logits, targets):
    """Mean over the batch of ``-sum_k targets[:, k] * log_softmax(logits)[:, k]`` (scalar)."""
    return (-(targets * ops.log_softmax(logits, axis=-1)).sum(axis=-1)).mean()


# Token and position embeddings are never decayed (timm ``VisionTransformer.no_weight_decay``).
NO_DECAY_LEAVES = ("pos_embed", "cls_token", "dist_token")


def model_kwargs(cfg, num_classes):
    """Builder keyword arguments: num_classes, drop_path_rate when non-zero, and ``model.kwargs``."""
    kw = {"num_classes": num_classes, **(cfg.model.kwargs or {})}
    if cfg.model.drop_path_rate:
        kw["drop_path_rate"] = float(cfg.model.drop_path_rate)
    return kw


def is_no_decay(name, param):
    """1-D parameters (norm scales and shifts, biases) and token/position embeddings."""
    return param.ndim <= 1 or name.rsplit(".", 1)[-1] in NO_DECAY_LEAVES


class ClassificationTask:
    """Model, data and loss of one classification run, built from a config."""

    loss_names = ("ce",)

    def __init__(self, cfg):
        self.cfg = cfg
        self.data = ClassificationData(cfg)
        self.num_classes = self.data.num_classes
        self.model = create_model(cfg.model.name, **model_kwargs(cfg, self.num_classes))

    def steps_per_epoch(self):
        return len(self.data.train)

    def set_epoch(self, epoch):
        self.data.train.set_epoch(epoch)

    def train_batches(self, epoch):
        """Iterator of ``(images, targets)`` numpy batches of epoch ``epoch``."""
        self.set_epoch(epoch)
        return iter(self.data.train)

    def forward_loss(self, model, images, targets):
        """``(loss, (ce,))``; traceable by ``ms.jit`` (the target rank is static)."""
        logits = model(images)
        if targets.ndim == 2:
            loss = soft_target_cross_entropy(logits, targets)
        else:
            loss = ops.cross_entropy(logits, targets)
        return loss, (loss,)

    def param_groups(self, model):
        """``decay`` (weights) and ``no_decay`` (see :func:`is_no_decay`), in parameter order."""
        decay, no_decay = [], []
        for p in model.trainable_params():
            (no_decay if is_no_decay(p.name, p) else decay).append(p)
        groups = [{"name": "decay", "params": decay, "weight_decay": float(self.cfg.optim.weight_decay)},
                  {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def evaluate(self, model, run_dir=None):
        """Top-1/top-5 accuracy (percent) on the val split with the eval transform."""
        was_training = model.training
        model.set_train(False)
        try:
            return self.evaluate_with(lambda images: model(ms.Tensor(images)).asnumpy(), run_dir)
        finally:
            model.set_train(was_training)

    def evaluate_with(self, predict, run_dir=None):
        """Top-1/top-5 of any ``predict`` callable (numpy (B, 3, S, S) -> logits (B, K)) on the val
        split; ``ascend/infer.py`` passes an exported model here."""
        acc = TopKAccuracy((1, 5))
        for images, labels in self.data.val:
            acc.update(np.asarray(predict(images)).astype(np.float32), labels)
        return {**acc.compute(), "primary": "top1"}


def build_task(cfg):
    return ClassificationTask(cfg)
