"""Framework-free half of the DUKD task (both trees build on it): config reading, the training
batch stream with DUKD's per-batch random choices, and the evaluation loop around a
``super_resolve`` callable.

Batches (numpy, identical for both frameworks):
- ``method`` scratch / kd: ``(lq (B,3,h,w), gt (B,3,sh,sw))``;
- ``method`` dukd: ``(lq, gt, z (B, n_sub, 3, h, w), masks (B, n_sub, 4))`` with the HR
  sub-patches of the zoom-in cells and the label-consistency masks (zeros when
  ``dukd.noisy_prob`` is null).
"""
import itertools
from dataclasses import dataclass

import numpy as np

from common.data.sr_data import (PairedPatchSampler, label_consistency_masks, load_benchmark, paired_paths,
                                 zoom_in_cells, zoom_in_patches)
from common.data.sr_demo import demo_eval_set, demo_train_pairs
from common.metrics.sr import SRMetrics, psnr, to_uint8

METHODS = ("scratch", "kd", "dukd")


@dataclass
class DUKDOptions:
    """The ``dukd`` config section (see configs/dukd/base.yaml)."""
    method: str = "dukd"
    pix_weight: float = 1.0
    kd_weight: float = 1.0
    n_sub: int = 1
    zoom_out: bool = False
    noisy_prob: object = None
    aug_inverse: str = "reverse"
    teacher_eval: bool = True
    zero_grad_between_steps: bool = False

    @classmethod
    def from_config(cls, cfg):
        d = cfg.dukd
        opts = cls(method=d.method, pix_weight=float(d.pix_weight), kd_weight=float(d.kd_weight), n_sub=int(d.n_sub),
                   zoom_out=bool(d.zoom_out), noisy_prob=None if d.noisy_prob is None else float(d.noisy_prob),
                   aug_inverse=d.aug_inverse, teacher_eval=bool(d.teacher_eval),
                   zero_grad_between_steps=bool(d.zero_grad_between_steps))
        if opts.method not in METHODS:
            raise ValueError(f"config key 'dukd.method' = {opts.method!r}; choices: {', '.join(METHODS)}")
        if opts.aug_inverse not in ("reverse", "reuse"):
            raise ValueError(f"config key 'dukd.aug_inverse' = {opts.aug_inverse!r}; choices: reverse, reuse")
        return opts

    @property
    def uses_teacher(self):
        return self.method in ("kd", "dukd")

    @property
    def loss_names(self):
        if self.method == "scratch":
            return ("pix",)
        if self.method == "kd":
            return ("pix", "kd")
        return ("pix", "kd", "zoom_in", "zoom_out_pix", "zoom_out_kd")


class SRData:
    """Training sampler and evaluation sets of a config (demo photos when no folders are given)."""

    def __init__(self, cfg, opts):
        d = cfg.data
        self.scale, self.lr_patch, self.batch_size = int(d.scale), int(d.lr_patch), int(d.batch_size)
        self.opts = opts
        if d.train_hr:
            if not d.train_lr:
                raise ValueError("config key 'data.train_lr' must name the LR folder when 'data.train_hr' is set")
            pairs = paired_paths(d.train_hr, d.train_lr, self.scale, d.filename_tmpl)
            self.source = f"folders {d.train_hr} / {d.train_lr}"
        else:
            pairs = demo_train_pairs(self.scale, d.demo_max_side)
            self.source = "built-in demo photos (common/data/sr_demo.py)"
        self.sampler = PairedPatchSampler(pairs, self.scale, self.lr_patch, self.batch_size, d.enlarge_ratio,
                                          d.hflip, d.rot)
        if d.val_root:
            self.eval_sets = {name: load_benchmark(d.val_root, name, self.scale) for name in d.val_sets}
        else:
            self.eval_sets = {"demo": demo_eval_set(self.scale, d.demo_eval_hr)}

    def steps_per_epoch(self):
        return self.sampler.steps_per_epoch()

    def batches(self, rng):
        o = self.opts
        for lq, gt in self.sampler.batches(rng):
            if o.method != "dukd":
                yield lq, gt
                continue
            cells = zoom_in_cells(self.scale, o.n_sub, rng)
            z = zoom_in_patches(gt, cells, self.lr_patch)
            if o.noisy_prob is None:
                masks = np.zeros((lq.shape[0], o.n_sub, 4), np.float32)
            else:
                masks = label_consistency_masks(lq.shape[0], o.n_sub, o.noisy_prob, rng)
            yield lq, gt, z, masks


def geometric_variants():
    """The 8 (transpose, flip H, flip W) combinations of BasicSR's self-ensemble."""
    return list(itertools.product((False, True), repeat=3))


def apply_geometry(x, t, h, v, inverse=False):
    """Flip W (v), flip H (h), transpose (t) on (..., H, W) numpy; ``inverse`` undoes it."""
    steps = [("v", v), ("h", h), ("t", t)]
    for op, on in (reversed(steps) if inverse else steps):
        if not on:
            continue
        if op == "v":
            x = x[..., ::-1]
        elif op == "h":
            x = x[..., ::-1, :]
        else:
            x = np.swapaxes(x, -1, -2)
    return np.ascontiguousarray(x)


def super_resolve_image(run, lr_uint8, scale, window=1, self_ensemble=False):
    """uint8 (sH, sW, 3) SR image of a uint8 (H, W, 3) LR image.

    ``run`` maps float32 (1, 3, h, w) to float32 (1, 3, s*h, s*w). With ``window`` > 1 the input is
    reflect-padded at the bottom/right to a multiple of it and the output cropped (SwinIR);
    ``self_ensemble`` averages the 8 flips/transposes (BasicSR ``test_selfensemble``).
    """
    x = (lr_uint8.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
    h, w = x.shape[-2:]

    def once(inp):
        ph, pw = (-inp.shape[-2]) % window, (-inp.shape[-1]) % window
        if ph or pw:
            inp = np.pad(inp, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
        out = run(np.ascontiguousarray(inp, dtype=np.float32))
        return out[..., :(inp.shape[-2] - ph) * scale, :(inp.shape[-1] - pw) * scale]

    if self_ensemble:
        outs = [apply_geometry(once(apply_geometry(x, *g)), *g, inverse=True) for g in geometric_variants()]
        y = np.mean(outs, axis=0)
    else:
        y = once(x)
    if y.shape[-2:] != (h * scale, w * scale):
        raise RuntimeError(f"model output {y.shape} does not match x{scale} of the input {x.shape}")
    return to_uint8(y[0].transpose(1, 2, 0))


def evaluate_sets(eval_sets, run_student, run_teacher, scale, crop_border=None, window=1, self_ensemble=False,
                  teacher_cache=None, max_images=0):
    """PSNR/SSIM on Y of the student per set, and PSNR(student, teacher) when ``run_teacher`` is given.

    Returns ``{'<set>/psnr_y', '<set>/ssim_y', '<set>/psnr_st', '<set>/teacher_psnr_y', 'primary'}``;
    ``primary`` is the first set's ``psnr_y``. ``teacher_cache`` (a dict) keeps the teacher's SR
    images across evaluations.
    """
    crop = scale if crop_border is None else int(crop_border)
    out, primary = {}, None
    for set_name, items in eval_sets.items():
        items = items[:max_images] if max_images else items
        metrics, st, t_metrics = SRMetrics(crop), [], SRMetrics(crop)
        for name, hr, lr in items:
            sr = super_resolve_image(run_student, lr, scale, window, self_ensemble)
            metrics.update(sr, hr)
            if run_teacher is not None:
                key = (set_name, name)
                if teacher_cache is None or key not in teacher_cache:
                    t_sr = super_resolve_image(run_teacher, lr, scale, window, self_ensemble)
                    if teacher_cache is not None:
                        teacher_cache[key] = t_sr
                else:
                    t_sr = teacher_cache[key]
                st.append(psnr(sr, t_sr, crop, True))
                t_metrics.update(t_sr, hr)
        res = metrics.compute()
        out[f"{set_name}/psnr_y"], out[f"{set_name}/ssim_y"] = res["psnr"], res["ssim"]
        if st:
            out[f"{set_name}/psnr_st"] = float(np.mean(st))
            out[f"{set_name}/teacher_psnr_y"] = t_metrics.compute()["psnr"]
        primary = primary or f"{set_name}/psnr_y"
    out["primary"] = primary
    return out


def tile_options(cfg, window=1):
    """``(tile, overlap, batch)`` from ``eval.tile`` / ``eval.tile_overlap`` / ``eval.tile_batch``
    (tile 0 when null: whole images); the tile must be a multiple of ``window`` (SwinIR) and larger
    than the overlap."""
    e = cfg.eval
    tile = int(e.get("tile") or 0)
    overlap, batch = int(e.get("tile_overlap", 0) or 0), int(e.get("tile_batch", 1) or 1)
    if not tile:
        return 0, overlap, batch
    if tile % window:
        raise ValueError(f"config key 'eval.tile' = {tile} must be a multiple of the model's window_size {window}")
    if not 0 <= overlap < tile:
        raise ValueError(f"config key 'eval.tile_overlap' = {overlap} must be >= 0 and smaller than eval.tile ({tile})")
    return tile, overlap, batch


def tile_corners(size, tile, overlap):
    """Tile origins along one axis: every ``tile - overlap`` pixels, the last one flush with the end."""
    stride = tile - overlap
    return list(range(0, size - tile, stride)) + [size - tile]


def tiled_super_resolve(predict, x, scale, tile, overlap, batch=1):
    """SR of a float32 (1, 3, h, w) image from ``tile`` x ``tile`` LR tiles (SwinIR's test tiling).

    Origins every ``tile - overlap`` pixels with the last tile flush with the bottom/right edge; the
    tile outputs are summed into the x``scale`` canvas and divided by the per-pixel tile count. An
    image smaller than the tile is first reflect-padded at the bottom/right to the tile and the
    output cropped back. ``predict`` maps (b, 3, tile, tile) to (b, 3, s tile, s tile), at most
    ``batch`` tiles per call (numpy in and out).
    """
    h, w = x.shape[-2:]
    ph, pw = max(tile - h, 0), max(tile - w, 0)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    hp, wp = x.shape[-2:]
    corners = [(y, xx) for y in tile_corners(hp, tile, overlap) for xx in tile_corners(wp, tile, overlap)]
    out = np.zeros((x.shape[1], hp * scale, wp * scale), np.float64)
    count = np.zeros((1, hp * scale, wp * scale), np.float64)
    st = tile * scale
    for s in range(0, len(corners), batch):
        group = corners[s:s + batch]
        tiles = np.ascontiguousarray(np.stack([x[0, :, y:y + tile, xx:xx + tile] for y, xx in group]), np.float32)
        pred = np.asarray(predict(tiles), dtype=np.float32)
        if pred.shape != (len(group), x.shape[1], st, st):
            raise RuntimeError(f"tile predictions {pred.shape}, expected {(len(group), x.shape[1], st, st)}")
        for (y, xx), p in zip(group, pred):
            out[:, y * scale:y * scale + st, xx * scale:xx * scale + st] += p
            count[:, y * scale:y * scale + st, xx * scale:xx * scale + st] += 1.0
    return (out / count).astype(np.float32)[None, :, :h * scale, :w * scale]


def eval_runner(predict, scale, tiling):
    """``run(x (1, 3, h, w)) -> (1, 3, sh, sw)`` of the eval protocol around a numpy ``predict``:
    whole images when ``tiling[0]`` is 0, else ``tiled_super_resolve`` with ``(tile, overlap, batch)``."""
    tile, overlap, batch = tiling
    if not tile:
        return lambda x: np.asarray(predict(x), dtype=np.float32)
    return lambda x: tiled_super_resolve(predict, x, scale, tile, overlap, batch)
