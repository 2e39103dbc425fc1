"""Framework-free half of the IFT task: training batches and the evaluation loop, from a config.

With ``data.root`` set, training reads Kalantari crop folders (``data.crop_dir``, or crops cut once
from ``<root>/<train_dir>`` into the data cache) and evaluation runs the tiled full-image protocol
on every scene of ``<root>/<test_dir>``. With ``data.root: null`` both come from the built-in
synthetic stacks (``common.data.hdr_synthetic``). Batches depend only on (seed, epoch).
"""
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common.data.hdr_kalantari import (KalantariCrops, data_cache_root, list_scenes, read_scene, scene_inputs,
                                       tiled_predict, write_training_crops)
from common.data.hdr_synthetic import SyntheticHDR
from common.metrics.hdr import HDRMetrics, mu_tonemap


def model_kwargs(cfg):
    """Builder keyword arguments from ``cfg.model`` (all keys but ``name``) and the input order."""
    kw = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg.model.items() if k != "name"}
    kw["input_order"] = cfg.data.input_order
    return kw


def _cached_crops(cfg):
    """Crop folder of ``cfg.data``: ``data.crop_dir`` or a cache folder built once (atomically)."""
    d = cfg.data
    if d.crop_dir:
        return Path(d.crop_dir)
    src = Path(d.root) / d.train_dir
    key = json.dumps([str(src.resolve()), d.crop_size, d.crop_stride, d.rotate_aug, d.ldr_scale])
    out = data_cache_root() / f"kalantari_crops_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
        try:
            n = write_training_crops(src, tmp, d.crop_size, d.crop_stride, d.rotate_aug, d.ldr_scale)
            if n == 0:
                raise ValueError(f"data.root: no {d.crop_size}px training crops could be cut from {src}")
            tmp.rename(out)
        except OSError:
            if not out.is_dir():  # not a concurrent builder finishing first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


class HDRTaskData:
    """Training batches and evaluation of one run (see the module docstring)."""

    def __init__(self, cfg):
        self.cfg = cfg
        d = cfg.data
        self.batch_size = int(d.batch_size)
        self.seed = int(cfg.train.seed)
        if d.root:
            self.crops = KalantariCrops(_cached_crops(cfg), d.input_order, d.ldr_scale)
            if len(self.crops) < self.batch_size:
                raise ValueError(f"data.batch_size={self.batch_size} exceeds the {len(self.crops)} training crops")
            self.test_scenes = list_scenes(Path(d.root) / d.test_dir)
            self.synthetic = None
        else:
            self.synthetic = SyntheticHDR(d.demo_crop, self.batch_size, d.demo_steps_per_epoch, d.demo_val_size,
                                          self.seed, tuple(d.demo_shift), d.input_order, d.demo_val_per_photo)

    def steps_per_epoch(self):
        if self.synthetic is not None:
            return self.synthetic.steps_per_epoch()
        return len(self.crops) // self.batch_size

    def train_batches(self, epoch):
        """Iterator of ``(x1, x2, x3, label)`` float32 batches of ``epoch`` (static shapes)."""
        if self.synthetic is not None:
            yield from self.synthetic.batches(epoch)
            return
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.crops))
        for s in range(self.steps_per_epoch()):
            samples = [self.crops.sample(int(i)) for i in order[s * self.batch_size:(s + 1) * self.batch_size]]
            yield tuple(np.stack([smp[j] for smp in samples]) for j in range(4))

    def eval_samples(self):
        """Iterator of ``(name, (x1, x2, x3) (6, H, W), label (3, H, W))``."""
        limit = int(self.cfg.eval.max_scenes) or None
        if self.synthetic is not None:
            for i, (inputs, label) in enumerate(self.synthetic.val[:limit]):
                yield f"demo_{i}", inputs, label
            return
        for folder in self.test_scenes[:limit]:
            scene = read_scene(folder, self.cfg.data.ldr_scale)
            yield (folder.name, scene_inputs(scene["ldrs"], scene["exposures"], self.cfg.data.input_order),
                   np.ascontiguousarray(scene["label"].transpose(2, 0, 1)))

    def evaluate(self, predict, run_dir=None):
        """Tiled inference with ``predict(x1, x2, x3)`` (numpy batches in and out) on every eval
        sample; PSNR/SSIM -l and -mu averaged over samples (float64). ``primary``: psnr_mu. With a
        ``run_dir``, the first sample's tonemapped reference input, prediction and label are saved
        side by side as ``eval_tonemapped.png``."""
        e = self.cfg.eval
        metrics = HDRMetrics()
        for i, (name, inputs, label) in enumerate(self.eval_samples()):
            pred = tiled_predict(predict, inputs, int(e.tile), float(e.pad_value))
            metrics.update(pred, label, channel_axis=0)
            if i == 0 and run_dir is not None:
                save_tonemapped_row(Path(run_dir) / "eval_tonemapped.png",
                                    [inputs[1][:3] if self.cfg.data.input_order == "hdr_first" else inputs[1][3:],
                                     pred, label])
        return {**metrics.compute(), "primary": "psnr_mu"}


def save_tonemapped_row(path, images):
    """Save (3, H, W) BGR linear images mu-law tonemapped, side by side, as an 8-bit PNG."""
    row = np.concatenate([np.clip(mu_tonemap(np.clip(im, 0, None)), 0, 1).transpose(1, 2, 0) for im in images], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    cv2.imwrite(str(tmp), np.round(row * 255).astype(np.uint8))
    tmp.replace(path)
