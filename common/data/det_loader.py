"""Static-shape detection batches for training and evaluation (numpy; both frameworks consume them).

Training: ``DetectionBatches`` yields ``(images, labels)``: images float32 (B, 3, S, S) RGB in
[0, 1]; labels float32 (B, max_boxes, 5) rows ``[class, x1, y1, x2, y2]`` in input pixels, padding
rows all zero. The data order and every augmentation choice derive from ``(seed, epoch, position)``
only, so results do not depend on the worker count or thread timing.

Evaluation: ``DetectionEvalBatches`` yields ``(images, infos)`` with one ``EvalImageInfo`` per image
to map predicted boxes back to the original image (see ``EvalImageInfo.to_original``).
"""
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from common.data import det_transforms as T

LOGGER = logging.getLogger(__name__)

# Official `eval_640_repro.py`: long side used when loading for the reproduce-640 evaluation.
REPRO_640_LOAD_SIZE = {"n": 636, "s": 634, "m": 636, "l": 636}


def sample_rng(seed, epoch, position):
    """The generator of one training sample: a function of (seed, epoch, position) only."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, position, 1])))


class DetectionBatches:
    """Augmented training batches over a ``CocoDetection``-like dataset.

    The dataset must provide ``__len__``, ``load_image(i) -> BGR uint8 or None`` and ``labels[i]``
    ((n, 5) rows [class, x1, y1, x2, y2] in original pixels).

    Args:
        img_size: square network input size S.
        max_boxes: label rows per image; extra boxes are dropped and counted (``dropped_boxes``).
        aug_cfg: overrides of ``det_transforms.DEFAULT_AUG`` (official ``hyp`` names).
        seed: base seed; ``set_epoch`` selects the epoch.
        mosaic: when False (last epochs of the recipe) every sample takes the letterbox + affine path
            and MixUp is off.
        augment: False gives plain letterboxed images (no random transform).
        workers: threads decoding/augmenting samples (0 = in the calling thread).
    """

    def __init__(self, dataset, img_size, batch_size, max_boxes=160, aug_cfg=None, seed=0, shuffle=True,
                 drop_last=True, mosaic=True, augment=True, workers=2):
        if len(dataset) == 0:
            raise ValueError("DetectionBatches: the dataset is empty")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(f"DetectionBatches: batch_size {batch_size} exceeds the {len(dataset)} images "
                             "and drop_last=True would yield no batch")
        self.dataset = dataset
        self.img_size = int(img_size)
        self.batch_size = int(batch_size)
        self.max_boxes = int(max_boxes)
        self.aug = T.merge_aug_cfg(aug_cfg)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.mosaic = mosaic
        self.augment = augment
        self.workers = int(workers)
        self.epoch = 0
        self.dropped_boxes = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_order(self):
        """Dataset indices of this epoch in visiting order."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, self.epoch, 0])))
        return rng.permutation(n)

    def __iter__(self):
        order = self.epoch_order()
        batches = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
        dropped_before = self.dropped_boxes
        jobs = [(int(idx), b * self.batch_size + k) for b, idxs in enumerate(batches) for k, idx in enumerate(idxs)]
        results = _ordered_map(self._sample, jobs, self.workers, prefetch=2 * self.batch_size)
        for idxs in batches:
            samples = [next(results) for _ in idxs]
            yield self._collate(samples)
        if self.dropped_boxes > dropped_before:
            LOGGER.warning("epoch %d: %d boxes beyond max_boxes=%d were dropped",
                           self.epoch, self.dropped_boxes - dropped_before, self.max_boxes)

    def _collate(self, samples):
        images = np.stack([T.to_network_input(img) for img, _ in samples])
        labels = np.zeros((len(samples), self.max_boxes, 5), dtype=np.float32)
        for i, (_, lab) in enumerate(samples):
            if len(lab) > self.max_boxes:
                self.dropped_boxes += len(lab) - self.max_boxes
                lab = lab[:self.max_boxes]
            labels[i, :len(lab)] = lab
        return images, labels

    # --------------------------------------------------------------------------- one sample
    def _sample(self, job):
        index, position = job
        rng = sample_rng(self.seed, self.epoch, position)
        s, aug = self.img_size, self.aug
        if self.augment and self.mosaic and rng.random() < aug["mosaic"]:
            img, labels = self._mosaic(index, rng)
            if rng.random() < aug["mixup"]:
                img2, labels2 = self._mosaic(int(rng.integers(0, len(self.dataset))), rng)
                img, labels = T.mixup(img, labels, img2, labels2, rng)
        else:
            img, labels = self._load(index)
            img, ratio, pad = T.letterbox(img, (s, s), scaleup=self.augment)
            labels[:, 1:] = T.boxes_to_letterbox(labels[:, 1:], (ratio, ratio), pad)
            if self.augment:
                img, labels = T.random_affine(img, labels, rng, aug["degrees"], aug["translate"],
                                              aug["scale"], aug["shear"], (s, s))
        if len(labels):
            labels[:, [1, 3]] = labels[:, [1, 3]].clip(0, img.shape[1] - 1e-3)
            labels[:, [2, 4]] = labels[:, [2, 4]].clip(0, img.shape[0] - 1e-3)
        if self.augment:
            img = T.augment_hsv(img, rng, aug["hsv_h"], aug["hsv_s"], aug["hsv_v"])
            if rng.random() < aug["flipud"]:
                img, labels = T.flip_ud(img, labels)
            if rng.random() < aug["fliplr"]:
                img, labels = T.flip_lr(img, labels)
        return img, labels.astype(np.float32)

    def _load(self, index):
        """Image resized to long side S and its labels in the resized pixels; an unreadable image is
        replaced by the next readable one (the dataset counts and reports it)."""
        n = len(self.dataset)
        for k in range(n):
            i = (index + k) % n
            img = self.dataset.load_image(i)
            if img is not None:
                img, (h0, w0), (h, w) = T.resize_long_side(img, self.img_size, augment=self.augment)
                labels = np.array(self.dataset.labels[i], dtype=np.float64).reshape(-1, 5)
                labels[:, [1, 3]] *= w / w0
                labels[:, [2, 4]] *= h / h0
                return img, labels
        raise RuntimeError("DetectionBatches: no image of the dataset can be read")

    def _mosaic(self, index, rng):
        others = rng.integers(0, len(self.dataset), 3)
        indices = rng.permutation(np.concatenate(([index], others)))
        imgs, labels = zip(*(self._load(int(i)) for i in indices))
        canvas, labels = T.mosaic_canvas(imgs, labels, self.img_size, rng)
        a = self.aug
        return T.random_affine(canvas, labels, rng, a["degrees"], a["translate"], a["scale"], a["shear"],
                               (self.img_size, self.img_size))


class EvalImageInfo(NamedTuple):
    """How one evaluation image was prepared. Shapes are (h, w); ``gain`` = (gain_y, gain_x),
    ``pad`` = (pad_x, pad_y) in input pixels."""
    index: int
    image_id: object
    orig_shape: tuple
    gain: tuple
    pad: tuple
    scale_exact: bool

    def to_original(self, boxes):
        """(n, 4) xyxy input-pixel boxes -> original-image pixels (clipped)."""
        return T.boxes_to_original(boxes, self.orig_shape, self.gain, self.pad, self.scale_exact)


class DetectionEvalBatches:
    """Letterboxed evaluation batches in one of the official modes.

    Modes:
        ``'rect'``: official default; images sorted by aspect ratio, per-batch letterbox shape
            (multiple of ``stride``, ``pad`` 0.5), long side loaded at ``load_size`` (default S),
            INTER_AREA when shrinking, no upscale in the letterbox, float pad offsets.
        ``'square'``: as ``'rect'`` but every image letterboxed to S x S (static shapes).
        ``'repro640'``: official ``--reproduce_640_eval``: load with long side ``load_size``
            (636 for N/M/L, 634 for S; see ``REPRO_640_LOAD_SIZE``), letterbox to exactly S x S,
            integer pad offsets, per-axis exact rescale.

    Yields ``(images float32 (B, 3, H, W), infos list[EvalImageInfo])``; unreadable images are
    left out of their batch (counted by the dataset).
    """

    def __init__(self, dataset, img_size, batch_size, mode="rect", load_size=None, stride=32, pad=0.5,
                 workers=2):
        if mode not in ("rect", "square", "repro640"):
            raise ValueError(f"eval mode must be 'rect', 'square' or 'repro640', got {mode!r}")
        if mode == "repro640" and load_size is None:
            raise ValueError("eval mode 'repro640' needs load_size (test_load_size: 636 for N/M/L, 634 for S)")
        self.dataset = dataset
        self.img_size = int(img_size)
        self.batch_size = int(batch_size)
        self.mode = mode
        self.load_size = int(load_size or img_size)
        self.workers = int(workers)
        n = len(dataset)
        if mode == "rect":
            self.order, self.batch_shapes = T.rect_batch_shapes(dataset.shapes, batch_size, img_size, stride, pad)
        else:
            self.order = np.arange(n)
            self.batch_shapes = np.full((-(-n // batch_size), 2), self.img_size, dtype=np.int64)

    def __len__(self):
        return len(self.batch_shapes)

    def __iter__(self):
        jobs = [(int(idx), pos // self.batch_size) for pos, idx in enumerate(self.order)]
        results = _ordered_map(self._prepare, jobs, self.workers, prefetch=2 * self.batch_size)
        for b in range(len(self)):
            items = [next(results) for _ in self.order[b * self.batch_size:(b + 1) * self.batch_size]]
            items = [x for x in items if x is not None]
            if items:
                yield np.stack([x[0] for x in items]), [x[1] for x in items]

    def _prepare(self, job):
        index, batch = job
        img = self.dataset.load_image(index)
        if img is None:
            return None
        img, (h0, w0), (h, w) = T.resize_long_side(img, self.load_size, augment=False)
        shape = tuple(int(v) for v in self.batch_shapes[batch])
        exact = self.mode == "repro640"
        img, ratio, pad = T.letterbox(img, shape, scaleup=False, return_int=exact)
        info = EvalImageInfo(index, self.dataset.image_ids[index], (h0, w0),
                             (h * ratio / h0, w * ratio / w0), tuple(pad), exact)
        return T.to_network_input(img), info


def _ordered_map(fn, jobs, workers, prefetch):
    """``map(fn, jobs)`` in order, computed by ``workers`` threads at most ``prefetch`` jobs ahead."""
    if workers <= 0:
        yield from map(fn, jobs)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        it = iter(jobs)
        for job in it:
            pending.append(pool.submit(fn, job))
            if len(pending) >= prefetch:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(fn, nxt))
            yield result
