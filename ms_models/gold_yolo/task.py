"""Gold-YOLO training task (MindSpore), the protocol of docs/dev/CONTRACTS.md.

Builds the detector, its loss (plain, fuse_ab step 1, or self-distillation step 2 with a frozen
fuse_ab teacher), the YOLOv6 parameter groups and the COCO evaluation. Data and evaluation are
shared with the PyTorch twin through ``common.gold_yolo_pipeline``.
"""
import numpy as np
import mindspore as ms
from mindspore import Tensor, ops

from common.gold_yolo_groups import effective_weight_decay, yolov6_groups
from common.gold_yolo_pipeline import GoldYoloData, evaluate, mosaic_on, train_stream
from common.weights import read_weights
from ms_models.registry import create_model
from ms_models.utils.weights import load_numpy_state, load_pt_state_into

from .losses import GoldYoloDistillLoss, GoldYoloFuseABLoss, GoldYoloLoss


def model_kwargs(cfg, num_classes, head=None):
    m = cfg.model
    return dict(num_classes=num_classes, head=head or m.head, use_dfl=m.use_dfl, reg_max=m.reg_max,
                training_mode=m.training_mode, attn_scale=m.attn_scale,
                inject_pool_hsigmoid=m.inject_pool_hsigmoid, pool_mode=m.pool_mode,
                drop_path_rate=m.drop_path_rate)


def load_weights(net, path):
    """Load a MindSpore .ckpt/.safetensors written by this project, or PyTorch-named weights
    (official checkpoint, .pt state_dict) through the generic name rules."""
    state = read_weights(path)
    ms_names = set(net.parameters_dict())
    if set(state) <= ms_names or path.endswith(".ckpt"):
        load_numpy_state(net, state, strict=True)
    else:
        load_pt_state_into(net, state)


def loss_from_cfg(cfg, num_classes):
    m, l, d = cfg.model, cfg.loss, cfg.distill
    common = dict(num_classes=num_classes, reg_max=m.reg_max, use_dfl=m.use_dfl, iou_type=l.iou_type,
                  loss_weight={"class": l.cls_weight, "iou": l.iou_weight, "dfl": l.dfl_weight})
    if d.enabled:
        return GoldYoloDistillLoss(distill_ns=m.head == "distill_ns", temperature=d.temperature,
                                   distill_weight={"class": d.cls_weight, "dfl": d.dfl_weight}, **common)
    if m.head == "fuse_ab":
        return GoldYoloFuseABLoss(**common)
    if m.head == "distill_ns":
        raise ValueError("model.head=distill_ns is the step-2 student head: set distill.enabled=true "
                         "and distill.teacher_ckpt, or train step 1 with model.head=fuse_ab")
    return GoldYoloLoss(**common)


class GoldYoloTask:
    """See the module docstring. ``cfg`` is a loaded ``configs/gold_yolo`` config."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.data = GoldYoloData(cfg)
        self.num_classes = cfg.model.num_classes or len(self.data.train.class_names)
        name = f"gold_yolo_{cfg.model.variant}"
        self.model = create_model(name, **model_kwargs(cfg, self.num_classes))
        if cfg.model.pretrained:
            load_weights(self.model, cfg.model.pretrained)
        self.loss_fn = loss_from_cfg(cfg, self.num_classes)
        self.loss_names = tuple(self.loss_fn.component_names)
        self.teacher = None
        if cfg.distill.enabled:
            if not cfg.distill.teacher_ckpt:
                raise ValueError("distill.enabled=true needs distill.teacher_ckpt (the step-1 fuse_ab checkpoint)")
            self.teacher = create_model(name, **model_kwargs(cfg, self.num_classes, head="fuse_ab"))
            load_weights(self.teacher, cfg.distill.teacher_ckpt)
            for p in self.teacher.get_parameters():
                p.requires_grad = False
            self.teacher.set_train(True)  # official: the teacher is never put in eval mode
        self.stream = train_stream(cfg, self.data)

    def steps_per_epoch(self):
        return len(self.stream)

    def set_epoch(self, epoch):
        self.stream.set_epoch(epoch)
        self.stream.mosaic = mosaic_on(self.cfg, epoch)
        self.epoch = epoch

    def train_batches(self, epoch):
        if self.teacher is None:
            yield from self.stream
            return
        # Per-sample copies of epoch / epochs: every batch array is split on its first axis per rank.
        for images, labels in self.stream:
            yield images, labels, np.full(len(images), epoch / self.cfg.train.epochs, np.float32)

    def forward_loss(self, model, images, labels, epoch_frac=None):
        outputs = model(images)
        if self.teacher is None:
            return self.loss_fn(outputs, labels)
        t_out = self.teacher(images)
        teacher_out = (ops.stop_gradient(t_out[-2]), ops.stop_gradient(t_out[-1]))
        return self.loss_fn(outputs, labels, teacher_out, epoch_frac[0])

    def param_groups(self, model):
        s = self.cfg.solver
        wd = effective_weight_decay(self.cfg.optim.weight_decay, self.cfg.train.batch_size, s.batch_size_ref)
        named = [(p.name, p) for p in model.trainable_params()]
        return yolov6_groups(named, wd, s.warmup_bias_lr, train_alpha=s.train_bottlerep_alpha)

    def predict(self, model, images):
        model.set_train(False)
        out = model(Tensor(np.ascontiguousarray(images, np.float32)))
        return out.asnumpy()

    def evaluate(self, model, run_dir):
        model.set_train(False)
        try:
            return self.evaluate_with(lambda x: self.predict(model, x), run_dir)
        finally:
            model.set_train(True)

    def evaluate_with(self, predict, run_dir):
        """The eval pipeline (letterbox, NMS, COCOeval) around any ``predict`` callable (numpy
        (B, 3, H, W) -> (B, A, 5 + nc)); ``ascend/infer.py`` passes an exported model here."""
        return evaluate(predict, self.cfg, self.data, run_dir)


def build_task(cfg):
    ms.set_seed(int(cfg.train.seed))
    return GoldYoloTask(cfg)
