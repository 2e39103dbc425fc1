"""Super-resolution data (framework-free numpy): DIV2K-style paired folders, the Set5/Set14/B100/
Urban100 benchmark layout, BasicSR's paired random crop with flips and rotations, and DUKD's
per-batch random choices (zoom-in grid cells and label-consistency masks).

Layouts (as in the DUKD/BasicSR option files):
- training: ``<hr_dir>/<name>.png`` with ``<lr_dir>/<name>x<s>.png`` (``DIV2K_train_HR`` and
  ``DIV2K_train_LR_bicubic/X<s>``, file template ``{}x<s>``);
- benchmarks: ``<root>/<Set>/HR/<name>.png`` with ``<root>/<Set>/LR_bicubic/X<s>/<name>x<s>.png``;
  when the LR folder is absent the LR image is made from the HR image, cropped to a multiple of
  the scale, with the MATLAB bicubic of ``common.sr_resize`` (how these LR sets were made).

Images are uint8 (H, W, 3) RGB in memory; batches are float32 (B, 3, h, w) in [0, 1].
"""
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from common.sr_resize import imresize

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
AUG_OPS = ("i", "h", "v", "t")   # DUKD label-consistency ops: invert, flip H, flip W, transpose


def read_rgb(path):
    """uint8 (H, W, 3) RGB of an image file (grey images are repeated to 3 channels)."""
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise OSError(f"cannot read image '{path}': {e}") from e
    return np.ascontiguousarray(a)


def mod_crop(img, scale):
    """Crop (H, W, C) so that H and W are multiples of ``scale`` (top-left kept)."""
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale]


def bicubic_lr(hr, scale):
    """uint8 LR image of a uint8 HR image (mod-cropped) by MATLAB bicubic 1/scale, rounded."""
    lr = imresize(mod_crop(hr, scale).astype(np.float64) / 255.0, 1.0 / scale)
    return np.round(np.clip(lr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _list_images(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder '{folder}' does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def paired_paths(hr_dir, lr_dir, scale, filename_tmpl="{}x{s}"):
    """[(hr_path, lr_path)] matched by name: LR file ``filename_tmpl.format(stem, s=scale) + ext``.

    Raises FileNotFoundError naming every HR image without an LR partner.
    """
    hr = _list_images(hr_dir)
    if not hr:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) in HR folder '{hr_dir}'")
    lr_by_stem = {p.stem: p for p in _list_images(lr_dir)}
    pairs, missing = [], []
    for p in hr:
        stem = filename_tmpl.format(p.stem, s=scale)
        if stem in lr_by_stem:
            pairs.append((p, lr_by_stem[stem]))
        else:
            missing.append(p.name)
    if missing:
        raise FileNotFoundError(f"LR folder '{lr_dir}' lacks partners (template '{filename_tmpl}', scale {scale}) "
                                f"for {len(missing)} HR images: {', '.join(missing[:5])}"
                                + (" ..." if len(missing) > 5 else ""))
    return pairs


def check_pair(hr, lr, scale, name=""):
    """Raise ValueError unless the HR size is ``scale`` times the LR size."""
    if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
        raise ValueError(f"pair {name}: HR {hr.shape[:2]} is not {scale} x LR {lr.shape[:2]}")


def load_benchmark(root, set_name, scale):
    """[(name, hr uint8, lr uint8)] of one benchmark folder ``<root>/<set_name>`` (see module doc)."""
    base = Path(root) / set_name
    hr_dir, lr_dir = base / "HR", base / "LR_bicubic" / f"X{scale}"
    out = []
    if lr_dir.is_dir():
        for hp, lp in paired_paths(hr_dir, lr_dir, scale):
            hr, lr = mod_crop(read_rgb(hp), scale), read_rgb(lp)
            check_pair(hr, lr, scale, str(hp))
            out.append((hp.stem, hr, lr))
    else:
        for hp in _list_images(hr_dir):
            hr = mod_crop(read_rgb(hp), scale)
            out.append((hp.stem, hr, bicubic_lr(hr, scale)))
    if not out:
        raise FileNotFoundError(f"benchmark '{base}' holds no images")
    return out


def paired_random_crop(hr, lr, lr_patch, scale, rng):
    """Aligned random crops: LR (lr_patch, lr_patch) and HR (scale * lr_patch)^2 (BasicSR)."""
    h, w = lr.shape[:2]
    if h < lr_patch or w < lr_patch:
        raise ValueError(f"LR image {lr.shape[:2]} is smaller than the patch size {lr_patch}")
    top, left = int(rng.integers(0, h - lr_patch + 1)), int(rng.integers(0, w - lr_patch + 1))
    lr_c = lr[top:top + lr_patch, left:left + lr_patch]
    hr_c = hr[top * scale:(top + lr_patch) * scale, left * scale:(left + lr_patch) * scale]
    return hr_c, lr_c


def flip_rotate(imgs, rng, hflip=True, rot=True):
    """BasicSR ``augment``: horizontal flip, vertical flip and transpose, each with p 0.5, the same
    for every image of ``imgs`` (HWC)."""
    do_h = hflip and rng.random() < 0.5
    do_v = rot and rng.random() < 0.5
    do_t = rot and rng.random() < 0.5
    out = []
    for im in imgs:
        if do_h:
            im = im[:, ::-1]
        if do_v:
            im = im[::-1]
        if do_t:
            im = im.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(im))
    return out


def to_chw_float(img_uint8):
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return np.ascontiguousarray(img_uint8.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


class PairedPatchSampler:
    """Random paired patches from a list of (hr, lr) uint8 images or (hr_path, lr_path) pairs.

    An epoch is ``len(pairs) * enlarge_ratio`` samples in a random order (BasicSR's
    ``dataset_enlarge_ratio``) cut into ``batch_size`` batches (the remainder is dropped).
    Unreadable or malformed pairs are skipped (another pair is drawn) and counted in ``skipped``.
    """

    def __init__(self, pairs, scale, lr_patch, batch_size, enlarge_ratio=1, hflip=True, rot=True):
        if not pairs:
            raise ValueError("PairedPatchSampler: no training pairs")
        self.pairs, self.scale, self.lr_patch = list(pairs), int(scale), int(lr_patch)
        self.batch_size, self.enlarge_ratio = int(batch_size), int(enlarge_ratio)
        self.hflip, self.rot = bool(hflip), bool(rot)
        self.skipped = 0
        if self.steps_per_epoch() < 1:
            raise ValueError(f"{len(self.pairs)} pairs x enlarge ratio {enlarge_ratio} < batch size {batch_size}")

    def steps_per_epoch(self):
        return len(self.pairs) * self.enlarge_ratio // self.batch_size

    def _load(self, i):
        hr, lr = self.pairs[i]
        if isinstance(hr, (str, os.PathLike)):
            hr, lr = read_rgb(hr), read_rgb(lr)
        check_pair(hr, lr, self.scale, str(self.pairs[i][0]) if not isinstance(self.pairs[i][0], np.ndarray) else i)
        return hr, lr

    def _sample(self, i, rng):
        for _ in range(10 * len(self.pairs)):
            try:
                hr, lr = self._load(i)
                hr_c, lr_c = paired_random_crop(hr, lr, self.lr_patch, self.scale, rng)
                return flip_rotate([hr_c, lr_c], rng, self.hflip, self.rot)
            except (OSError, ValueError) as e:
                self.skipped += 1
                warnings.warn(f"skipping training pair {i}: {e} ({self.skipped} skipped so far)")
                i = int(rng.integers(len(self.pairs)))
        raise RuntimeError("PairedPatchSampler: every training pair failed to load")

    def batches(self, rng):
        """Iterator of ``(lq (B,3,h,w), gt (B,3,sh,sw))`` float32 batches of one epoch."""
        order = np.concatenate([rng.permutation(len(self.pairs)) for _ in range(self.enlarge_ratio)])
        for k in range(self.steps_per_epoch()):
            lq, gt = [], []
            for i in order[k * self.batch_size:(k + 1) * self.batch_size]:
                hr_c, lr_c = self._sample(int(i), rng)
                lq.append(to_chw_float(lr_c))
                gt.append(to_chw_float(hr_c))
            yield np.stack(lq), np.stack(gt)


def zoom_in_cells(scale, n_sub, rng):
    """``n_sub`` distinct grid cells (i, j) of the s x s grid, ``np.random.permutation(s^2)[:n_sub]``
    order (the same cells for the whole batch, as the official code)."""
    if not 1 <= n_sub <= scale * scale:
        raise ValueError(f"dukd.n_sub must be in [1, {scale * scale}] for scale {scale}, got {n_sub}")
    grid = [(i, j) for i in range(scale) for j in range(scale)]
    return [grid[k] for k in rng.permutation(scale * scale)[:n_sub]]


def zoom_in_patches(gt, cells, lr_size):
    """(B, n_sub, 3, h, w): the HR sub-patches ``gt[:, :, i*h:(i+1)*h, j*w:(j+1)*w]`` per cell.

    The official code concatenates the cells along the batch axis (cell-major); here the cell axis
    comes second so that the first axis stays the batch (data-parallel sharding), and the step
    reorders it to the official (n_sub * B) order.
    """
    h = w = int(lr_size)
    return np.ascontiguousarray(np.stack([gt[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] for i, j in cells], 1))


def label_consistency_masks(batch, n_sub, prob, rng):
    """(B, n_sub, 4) float32 0/1 masks of the ops ``AUG_OPS`` (invert, flip H, flip W, transpose).

    As in the official code, each op draws one Bernoulli(``prob``) per zoom-in sample over the
    cell-major order (sample k = cell * B + b), op after op.
    """
    n = batch * n_sub
    draws = np.stack([rng.random(n) < prob for _ in AUG_OPS], 1).astype(np.float32)   # (n, 4) cell-major
    return np.ascontiguousarray(draws.reshape(n_sub, batch, len(AUG_OPS)).transpose(1, 0, 2))


def augment_np(x, masks, order="reuse"):
    """Reference (numpy) of the label-consistency composite on (N, C, h, w) with (N, 4) masks:
    ``order='forward'`` applies i, h, v, t; ``'reverse'`` applies t, v, h, i (the true inverse)."""
    ops_order = AUG_OPS if order == "forward" else AUG_OPS[::-1]
    out = np.array(x, copy=True)
    for n in range(out.shape[0]):
        for op in ops_order:
            if not masks[n, AUG_OPS.index(op)]:
                continue
            if op == "i":
                out[n] = 1.0 - out[n]
            elif op == "h":
                out[n] = out[n][:, ::-1, :]
            elif op == "v":
                out[n] = out[n][:, :, ::-1]
            else:
                out[n] = out[n].transpose(0, 2, 1)
    return out
