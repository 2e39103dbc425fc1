"""The OFA-KD distiller (MindSpore): student with stage taps, frozen teacher, branch projectors.

Objective (``mode='ofa'``), with y the one-hot target (argmax of soft labels):

    L = w_gt * CE(z_s, labels) + w_kd * OFA(z_s, z_t; eps[-1]) + w_ofa * sum_i OFA(proj_i(f_i), z_t; eps_i)

``mode='kd'`` replaces the last two terms by w_kd * T^2 KL (vanilla KD) and ``mode='ce'`` keeps CE
only (the baselines of the demo).  The teacher's parameters are frozen, the teacher always runs in
eval mode, and its logits are cut from the graph.  ``construct(images, labels)`` returns
``(loss, (gt, kd, ofa))``; ``predict(images)`` and ``student`` are the deployable student
(projectors dropped).
"""
from mindspore import nn, ops

from .loss import LOG_IMPLS, cross_entropy, kd_loss, ofa_loss, target_mask
from .projectors import build_projector
from .taps import student_taps

MODES = ("ofa", "kd", "ce")


def broadcast_eps(eps, stages):
    """``ofa_eps`` as one value per stage plus one for the logits (a scalar, a 1-list or a full list)."""
    eps = list(eps) if isinstance(eps, (list, tuple)) else [eps]
    if len(eps) == 1:
        eps = eps * (len(stages) + 1)
    if len(eps) != len(stages) + 1:
        raise ValueError(f"ofa_eps needs 1 or len(ofa_stage) + 1 = {len(stages) + 1} values, got {len(eps)}")
    return [float(e) for e in eps]


class OFADistiller(nn.Cell):
    """Args:
        student, teacher: backbones (teacher weights already loaded; it is frozen here).
        num_classes: logits width (projector outputs).
        img_size: training input side (sizes the projectors).
        stages: student stages with a branch (subset of 1-4).
        eps: ``ofa_eps`` (scalar or per stage + logits), temperature: T of the OFA/KD losses.
        gt_weight, kd_weight, ofa_weight: loss weights; mode: 'ofa' | 'kd' | 'ce'.
        log_impl: 'faithful' (log(softmax)) or 'log_softmax'; prefix_token_source: see ``student_taps``.
    """

    def __init__(self, student, teacher, num_classes, img_size=224, stages=(1, 2, 3, 4), eps=1.0, temperature=1.0,
                 gt_weight=1.0, kd_weight=1.0, ofa_weight=1.0, mode="ofa", log_impl="faithful",
                 prefix_token_source="num_prefix_tokens"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"OFA distiller mode must be one of {MODES}, got {mode!r}")
        if log_impl not in LOG_IMPLS:
            raise ValueError(f"ofa log_impl must be one of {LOG_IMPLS}, got {log_impl!r}")
        bad = [s for s in stages if s not in (1, 2, 3, 4)]
        if bad:
            raise ValueError(f"ofa_stage entries must be in 1..4, got {bad}")
        self.mode, self.log_impl, self.num_classes = mode, log_impl, num_classes
        self.stages = tuple(int(s) for s in stages) if mode == "ofa" else ()
        self.eps = broadcast_eps(eps, self.stages)
        self.temperature = float(temperature)
        self.gt_weight, self.kd_weight, self.ofa_weight = float(gt_weight), float(kd_weight), float(ofa_weight)
        self.student = student_taps(student, prefix_token_source)
        self.teacher = teacher
        for p in self.teacher.get_parameters():
            p.requires_grad = False
        self.teacher.set_train(False)
        shapes = self.student.stage_shapes(img_size)
        teacher_dim = int(teacher.num_features)
        self.projector = nn.CellList([
            build_projector(s, shapes[s - 1], self.student.feature_dim, teacher_dim, num_classes,
                            self.student.token_num) for s in self.stages])

    def set_train(self, mode=True):
        super().set_train(mode)
        self.teacher.set_train(False)
        return self

    def predict(self, images):
        """Student logits (B, K): the deployed model, projectors unused."""
        return self.student.backbone(images)

    def branch_logits(self, images):
        """Student logits and the logits of every branch, in ``stages`` order."""
        logits, feats = self.student(images)
        return logits, tuple(proj(feats[s - 1]) for proj, s in zip(self.projector, self.stages))

    def construct(self, images, labels):
        logits, feats = self.student(images)
        loss_gt = self.gt_weight * cross_entropy(logits, labels)
        if self.mode == "ce":
            zero = loss_gt * 0.0
            return loss_gt, (loss_gt, zero, zero)
        logits_t = ops.stop_gradient(self.teacher(images))
        if self.mode == "kd":
            loss_kd = self.kd_weight * kd_loss(logits, logits_t, self.temperature)
            return loss_gt + loss_kd, (loss_gt, loss_kd, loss_kd * 0.0)
        mask = target_mask(labels, logits.shape[-1])
        loss_ofa = loss_gt * 0.0
        for i, proj in enumerate(self.projector):
            branch = proj(feats[self.stages[i] - 1])
            loss_ofa = loss_ofa + ofa_loss(branch, logits_t, mask, self.eps[i], self.temperature, self.log_impl)
        loss_ofa = self.ofa_weight * loss_ofa
        loss_kd = self.kd_weight * ofa_loss(logits, logits_t, mask, self.eps[-1], self.temperature, self.log_impl)
        return loss_gt + loss_kd + loss_ofa, (loss_gt, loss_kd, loss_ofa)
