"""ImageFolder classification data and its batch iterator (numpy batches for both frameworks).

Layout (ImageNet and CIFAR-as-PNG style)::

    root/train/<class_name>/*.jpg|png|...     root/val/<class_name>/...

Class indices are the sorted class-folder names. Unreadable images are skipped with a counted
warning: the sample is replaced by the next readable one, so an epoch never crashes midway and
batch shapes stay static.
"""
import logging
import math
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .cls_transforms import (IMAGENET_MEAN, IMAGENET_STD, TRAIN_DRAWS, eval_transform, to_chw_normalized,
                             train_transform)
from .mixup import Mixup, mix_targets, smooth_one_hot

log = logging.getLogger(__name__)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Training augmentation defaults (the keys of ``aug.*`` in configs/classification/base.yaml).
DEFAULT_AUG = {
    "scale": [0.08, 1.0], "ratio": [3 / 4, 4 / 3], "hflip": 0.5, "train_interpolation": "bilinear",
    "crop_pct": 0.875, "eval_interpolation": "bicubic",
    "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
    "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "cutmix_minmax": None, "mix_prob": 1.0, "switch_prob": 0.5,
    "label_smoothing": 0.0,
}


def load_rgb(path):
    """Decode an image file into a PIL RGB image (raises on unreadable or truncated files)."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


class ImageFolder:
    """Samples ``(path, class_index)`` from ``root/<class>/<image>``, classes sorted by name.

    ``classes``: the class list to index by (e.g. the train split's for a val split that lacks
    some classes); every class folder of ``root`` must be in it. Raises FileNotFoundError /
    ValueError naming ``root`` when it is missing, has no class folders, has an unknown class
    folder, or has no image files. ``num_skipped`` counts the distinct unreadable files met.
    """

    def __init__(self, root, extensions=IMG_EXTENSIONS, classes=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: folder '{self.root}' does not exist "
                                    f"(expected {self.root}/<class_name>/<image files>)")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise ValueError(f"ImageFolder: folder '{self.root}' has no class sub-folders "
                             f"(expected {self.root}/<class_name>/<image files>)")
        self.classes = found if classes is None else list(classes)
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise ValueError(f"ImageFolder: folder '{self.root}' has class folders {unknown[:5]} "
                             f"({len(unknown)} in all) that are not among the {len(self.classes)} given classes")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        exts = tuple(e.lower() for e in extensions)
        self.samples = []
        for c in found:
            files = sorted(p for p in (self.root / c).rglob("*") if p.is_file() and p.suffix.lower() in exts)
            self.samples += [(p, self.class_to_idx[c]) for p in files]
        if not self.samples:
            raise ValueError(f"ImageFolder: folder '{self.root}' has {len(found)} class folders but no "
                             f"image files with extensions {', '.join(exts)}")
        self.targets = np.array([t for _, t in self.samples], dtype=np.int32)
        self._bad = set()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.samples)

    @property
    def num_skipped(self):
        return len(self._bad)

    def load(self, index):
        """``(PIL RGB image, class index)`` of sample ``index``, or of the next readable sample."""
        n = len(self.samples)
        for k in range(n):
            i = (index + k) % n
            path, target = self.samples[i]
            if i in self._bad:
                continue
            try:
                return load_rgb(path), target
            except Exception as e:  # any decoder error means "unreadable"; never stop the epoch
                with self._lock:
                    self._bad.add(i)
                    count = len(self._bad)
                log.warning("ImageFolder: skipped unreadable image %s (%d skipped so far in %s): %s",
                            path, count, self.root, e)
        raise RuntimeError(f"ImageFolder: no readable image left in '{self.root}' ({n} files, all unreadable)")


class ClassificationBatches:
    """Iterator of numpy batches ``(images float32 (B, 3, S, S), targets)`` over an ImageFolder.

    ``targets`` are soft float32 (B, num_classes) when training with mixup/cutmix or label
    smoothing, else int32 (B,) class indices. ``train=True`` uses RandomResizedCrop + flip (+ mixup);
    ``train=False`` the resize + centre-crop eval transform. Epoch ``e`` draws every random choice
    (order, crops, flips, mixup) from ``np.random.default_rng([seed, e])`` in the main thread;
    ``workers`` threads only decode and transform, so the batches do not depend on ``workers``.
    ``shuffle`` and ``drop_last`` default to ``train``.
    """

    def __init__(self, dataset, batch_size, train, img_size, aug_cfg=None, seed=0, shuffle=None,
                 drop_last=None, workers=0, num_classes=None):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.img_size = int(img_size)
        self.aug = dict(DEFAULT_AUG)
        unknown = set(aug_cfg or {}) - set(DEFAULT_AUG)
        if unknown:
            raise KeyError(f"ClassificationBatches: unknown aug keys {sorted(unknown)} (valid: {sorted(DEFAULT_AUG)})")
        self.aug.update(aug_cfg or {})
        self.seed = int(seed)
        self.shuffle = self.train if shuffle is None else bool(shuffle)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.workers = int(workers)
        self.num_classes = int(num_classes or len(dataset.classes))
        self.epoch = 0
        a = self.aug
        self.mixup = Mixup(self.num_classes, a["mixup_alpha"], a["cutmix_alpha"], a["cutmix_minmax"],
                           a["mix_prob"], a["switch_prob"], a["label_smoothing"])
        self.soft_targets = self.train and (self.mixup.active or a["label_smoothing"] > 0)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.drop_last and len(dataset) < self.batch_size:
            raise ValueError(f"dataset '{dataset.root}' has {len(dataset)} images, fewer than one batch of "
                             f"{self.batch_size} (lower data.batch_size)")

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _plans(self):
        """Per batch: (sample indices, per-sample uniforms or None, MixDraw or None)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.dataset)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if not self.train:
                yield idx, None, None
                continue
            u = rng.random((len(idx), TRAIN_DRAWS))
            mix = self.mixup.draw(rng, self.img_size, self.img_size) if self.mixup.active else None
            yield idx, u, mix

    def _sample(self, index, u):
        img, target = self.dataset.load(int(index))
        a = self.aug
        if u is None:
            arr = eval_transform(img, self.img_size, a["crop_pct"], a["eval_interpolation"])
        else:
            arr = train_transform(img, u, self.img_size, tuple(a["scale"]), tuple(a["ratio"]), a["hflip"],
                                  a["train_interpolation"])
        return arr, target

    def _finish(self, plan, samples):
        _, _, mix = plan
        images = to_chw_normalized(np.stack([s[0] for s in samples]), self.aug["mean"], self.aug["std"])
        labels = np.array([s[1] for s in samples], dtype=np.int32)
        if not self.soft_targets:
            return images, labels
        if mix is None:
            return images, smooth_one_hot(labels, self.num_classes, self.aug["label_smoothing"])
        targets = mix_targets(labels, self.num_classes, mix.lam, self.aug["label_smoothing"])
        return self.mixup.apply(images, mix), targets

    def __iter__(self):
        plans = self._plans()
        if self.workers <= 0:
            for plan in plans:
                idx, u, _ = plan
                yield self._finish(plan, [self._sample(i, None if u is None else u[k]) for k, i in enumerate(idx)])
            return
        with ThreadPoolExecutor(self.workers) as pool:
            pending = deque()
            for plan in plans:  # keep one batch in flight while the current one is consumed
                idx, u, _ = plan
                pending.append((plan, [pool.submit(self._sample, i, None if u is None else u[k])
                                       for k, i in enumerate(idx)]))
                if len(pending) > 1:
                    p, futs = pending.popleft()
                    yield self._finish(p, [f.result() for f in futs])
            while pending:
                p, futs = pending.popleft()
                yield self._finish(p, [f.result() for f in futs])


class ClassificationData:
    """Train and val batch iterators built from a config (``data.*``, ``aug.*``, ``train.seed``).

    ``data.root: null`` selects the built-in demo set (``common.data.demo_classification``).
    """

    def __init__(self, cfg):
        d = cfg.data
        if d.root is None:
            from .demo_classification import demo_classification_root
            self.root = demo_classification_root()
            print(f"[data] data.root is null: using the built-in demo classification set at {self.root}")
        else:
            self.root = Path(str(d.root)).expanduser()
        train_ds = ImageFolder(self.root / d.train_split)
        val_ds = ImageFolder(self.root / d.val_split, classes=train_ds.classes)
        self.classes = train_ds.classes
        self.num_classes = int(cfg.model.num_classes or len(self.classes))
        if self.num_classes < len(self.classes):
            raise ValueError(f"model.num_classes={self.num_classes} but '{train_ds.root}' has {len(self.classes)} "
                             f"class folders")
        aug = {k: cfg.aug[k] for k in DEFAULT_AUG}
        seed, workers = int(cfg.train.seed), int(d.workers)
        self.train = ClassificationBatches(train_ds, d.batch_size, True, d.img_size, aug, seed,
                                           workers=workers, num_classes=self.num_classes)
        self.val = ClassificationBatches(val_ds, d.eval_batch_size or d.batch_size, False, d.img_size, aug, seed,
                                         workers=workers, num_classes=self.num_classes)
