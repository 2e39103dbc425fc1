"""The OFA-KD distiller, PyTorch twin of ``ms_models.ofakd.distiller`` (same objective, modes and names)."""
import torch
from torch import nn

from .loss import LOG_IMPLS, cross_entropy, kd_loss, ofa_loss, target_mask
from .projectors import build_projector
from .taps import student_taps

MODES = ("ofa", "kd", "ce")


def broadcast_eps(eps, stages):
    eps = list(eps) if isinstance(eps, (list, tuple)) else [eps]
    if len(eps) == 1:
        eps = eps * (len(stages) + 1)
    if len(eps) != len(stages) + 1:
        raise ValueError(f"ofa_eps needs 1 or len(ofa_stage) + 1 = {len(stages) + 1} values, got {len(eps)}")
    return [float(e) for e in eps]


class OFADistiller(nn.Module):
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
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        shapes = self.student.stage_shapes(img_size)
        teacher_dim = int(teacher.num_features)
        self.projector = nn.ModuleList([
            build_projector(s, shapes[s - 1], self.student.feature_dim, teacher_dim, num_classes,
                            self.student.token_num) for s in self.stages])

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def predict(self, images):
        return self.student.backbone(images)

    def branch_logits(self, images):
        logits, feats = self.student(images)
        return logits, tuple(proj(feats[s - 1]) for proj, s in zip(self.projector, self.stages))

    def forward(self, images, labels):
        logits, feats = self.student(images)
        loss_gt = self.gt_weight * cross_entropy(logits, labels)
        zero = loss_gt.new_zeros(())
        if self.mode == "ce":
            return loss_gt, (loss_gt, zero, zero)
        with torch.no_grad():
            logits_t = self.teacher(images)
        if self.mode == "kd":
            loss_kd = self.kd_weight * kd_loss(logits, logits_t, self.temperature)
            return loss_gt + loss_kd, (loss_gt, loss_kd, zero)
        mask = target_mask(labels, logits.shape[-1])
        loss_ofa = zero
        for i, proj in enumerate(self.projector):
            branch = proj(feats[self.stages[i] - 1])
            loss_ofa = loss_ofa + ofa_loss(branch, logits_t, mask, self.eps[i], self.temperature, self.log_impl)
        loss_ofa = self.ofa_weight * loss_ofa
        loss_kd = self.kd_weight * ofa_loss(logits, logits_t, mask, self.eps[-1], self.temperature, self.log_impl)
        return loss_gt + loss_kd + loss_ofa, (loss_gt, loss_kd, loss_ofa)
