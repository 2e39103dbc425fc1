"""Mixup / CutMix and label smoothing on numpy batches (timm ``Mixup`` semantics, mode 'batch').

One draw per batch: with probability ``prob`` the batch is mixed; when both mixup and cutmix are
enabled, cutmix is chosen with probability ``switch_prob``; ``lam ~ Beta(alpha, alpha)``. Each
image is mixed with the batch flipped along the batch axis (image i with image B-1-i). CutMix
pastes a box of the flipped batch and, with ``correct_lam``, sets ``lam = 1 - box_area / image_area``.
Targets are smoothed one-hots ``on = 1 - s + s/K``, ``off = s/K``, mixed as
``lam * y + (1 - lam) * flip(y)``; each row sums to 1.

The random calls are made in timm's order, but on the caller's ``np.random.Generator``.
"""
from dataclasses import dataclass

import numpy as np


def smooth_one_hot(labels, num_classes, smoothing=0.0):
    """int (B,) -> float32 (B, num_classes) with ``1 - s + s/K`` on the label and ``s/K`` elsewhere."""
    labels = np.asarray(labels)
    off = smoothing / num_classes
    out = np.full((labels.shape[0], num_classes), off, dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0 - smoothing + off
    return out


def mix_targets(labels, num_classes, lam=1.0, smoothing=0.0):
    """Soft targets float32 (B, K): ``lam * y + (1 - lam) * y[::-1]`` of smoothed one-hots ``y``."""
    y = smooth_one_hot(labels, num_classes, smoothing)
    return (np.float32(lam) * y + np.float32(1.0 - lam) * y[::-1]).astype(np.float32)


@dataclass(frozen=True)
class MixDraw:
    """The random outcome for one batch: ``lam`` and the cutmix box ``(y0, y1, x0, x1)`` or None."""
    lam: float
    box: tuple = None


class Mixup:
    """Batch-mode mixup/cutmix with label smoothing (see the module docstring).

    ``cutmix_minmax``: (min, max) box side as a fraction of the image side; when set, cutmix uses
    it instead of ``cutmix_alpha`` (which timm then forces to 1).
    """

    def __init__(self, num_classes, mixup_alpha=0.0, cutmix_alpha=0.0, cutmix_minmax=None, prob=1.0,
                 switch_prob=0.5, label_smoothing=0.0, correct_lam=True):
        if cutmix_minmax is not None:
            if len(cutmix_minmax) != 2:
                raise ValueError(f"cutmix_minmax must be [min, max], got {cutmix_minmax!r}")
            cutmix_alpha = 1.0
        self.num_classes = int(num_classes)
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.cutmix_minmax = None if cutmix_minmax is None else tuple(float(v) for v in cutmix_minmax)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.correct_lam = bool(correct_lam)

    @property
    def active(self):
        """True when mixup or cutmix can change a batch."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0

    def draw(self, rng, height, width):
        """Draw the batch's :class:`MixDraw` for images of ``height`` x ``width``."""
        if not self.active or not rng.random() < self.prob:
            return MixDraw(1.0)
        use_cutmix = False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = rng.random() < self.switch_prob
            alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        elif self.mixup_alpha > 0:
            alpha = self.mixup_alpha
        else:
            use_cutmix = True
            alpha = self.cutmix_alpha
        lam = float(rng.beta(alpha, alpha))
        if not use_cutmix:
            return MixDraw(lam)
        box = self._box(rng, lam, height, width)
        if self.correct_lam or self.cutmix_minmax is not None:
            y0, y1, x0, x1 = box
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
        return MixDraw(lam, box)

    def _box(self, rng, lam, h, w):
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            cut_h = int(rng.integers(int(h * lo), int(h * hi)))
            cut_w = int(rng.integers(int(w * lo), int(w * hi)))
            y0 = int(rng.integers(0, h - cut_h + 1))
            x0 = int(rng.integers(0, w - cut_w + 1))
            return y0, y0 + cut_h, x0, x0 + cut_w
        cut = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0, y1 = int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + (cut_h + 1) // 2, 0, h))
        x0, x1 = int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + (cut_w + 1) // 2, 0, w))
        return y0, y1, x0, x1

    @staticmethod
    def apply(images, draw):
        """Mix float32 images (B, C, H, W) according to ``draw``; returns a new array."""
        if draw.lam == 1.0:
            return images
        flipped = images[::-1]
        if draw.box is not None:
            y0, y1, x0, x1 = draw.box
            out = images.copy()
            out[:, :, y0:y1, x0:x1] = flipped[:, :, y0:y1, x0:x1]
            return out
        lam = np.float32(draw.lam)
        return (images * lam + flipped * (np.float32(1.0) - lam)).astype(np.float32)

    def __call__(self, images, labels, rng):
        """(float32 (B, C, H, W), int (B,)) -> (mixed images, soft targets float32 (B, K))."""
        d = self.draw(rng, images.shape[-2], images.shape[-1])
        return self.apply(images, d), mix_targets(labels, self.num_classes, d.lam, self.label_smoothing)
