"""Synthetic multi-exposure stacks with large motion, cut from photos shipped in Python packages.

Scene model (per photo, x in [0, 1] the sRGB-ish photo):
- linear HDR label H = x^2.2 in [0, 1];
- exposures in stops (0, 2, 4), t = (1, 4, 16): the spec's gain 4 with t = (1/4, 1, 4), written
  relative to the label so the gamma-mapped inputs L^2.2 / t are on the label's scale;
- LDR_i = clip(H t_i, 0, 1)^(1/2.2) quantised to 16 bit (as the 16-bit TIFFs of Kalantari). The
  reference (t = 4) saturates where H > 1/4 and the long frame where H > 1/16; only the short frame
  (t = 1) holds the highlights.
Motion: the two supporting frames are cut from the photo at the reference window shifted by a
vector of length 16-40 px (beyond an 8 x 8 attention window) in a random direction; the label is
the reference window. Channels are BGR like the Kalantari pipeline. All draws come from numpy
generators seeded by the caller, so both frameworks see identical batches.
"""
import numpy as np

from common.data.demo_classification import load_photo
from common.data.hdr_kalantari import scene_inputs

STOPS = (0.0, 2.0, 4.0)
TRAIN_PHOTOS = (("coffee", "skimage", "coffee"), ("chelsea", "skimage", "chelsea"),
                ("rocket", "skimage", "rocket"), ("china", "sklearn", "china.jpg"))
VAL_PHOTOS = (("astronaut", "skimage", "astronaut"), ("flower", "sklearn", "flower.jpg"))


def synthesize_stack(photo_rgb_uint8, stops=STOPS):
    """``(label float32 (H, W, 3) BGR, ldrs float32 (3, H, W, 3) BGR, exposures (3,))`` of a photo."""
    x = photo_rgb_uint8[:, :, ::-1].astype(np.float64) / 255.0
    hdr = np.power(x, 2.2)
    t = np.power(2.0, np.asarray(stops, dtype=np.float64))
    ldrs = [np.round(np.power(np.clip(hdr * ti, 0.0, 1.0), 1.0 / 2.2) * 65535.0) / 65536.0 for ti in t]
    return hdr.astype(np.float32), np.stack(ldrs).astype(np.float32), t


def random_shift(rng, lo=16, hi=40, multiple=1):
    """(dy, dx) integers, length in [lo, hi], uniform direction; rounded to ``multiple``."""
    r = rng.uniform(lo, hi)
    a = rng.uniform(0.0, 2.0 * np.pi)
    dy, dx = r * np.sin(a), r * np.cos(a)
    return int(np.round(dy / multiple) * multiple), int(np.round(dx / multiple) * multiple)


def cut_sample(stack, y, x, size, shifts, input_order="hdr_first"):
    """Inputs (3 x (6, S, S)) and label (3, S, S) of the window at (y, x); frame i is cut at
    (y + dy_i, x + dx_i) with ``shifts = ((dy1, dx1), (dy3, dx3))`` (the reference is unshifted)."""
    label, ldrs, t = stack
    offs = (shifts[0], (0, 0), shifts[1])
    frames = np.stack([ldrs[i, y + dy:y + dy + size, x + dx:x + dx + size] for i, (dy, dx) in enumerate(offs)])
    inputs = scene_inputs(frames, t, input_order)
    return inputs, np.ascontiguousarray(label[y:y + size, x:x + size].transpose(2, 0, 1))


def random_sample(stack, rng, size, lo=16, hi=40, multiple=1, input_order="hdr_first"):
    """One sample at a random window whose shifted copies stay inside the photo."""
    h, w = stack[0].shape[:2]
    shifts = (random_shift(rng, lo, hi, multiple), random_shift(rng, lo, hi, multiple))
    m = hi + multiple
    if h < size + 2 * m or w < size + 2 * m:
        raise ValueError(f"photo {h}x{w} too small for {size}px windows with shifts up to {hi}px")
    y = int(rng.integers(m, h - size - m + 1))
    x = int(rng.integers(m, w - size - m + 1))
    return cut_sample(stack, y, x, size, shifts, input_order)


class SyntheticHDR:
    """The demo data: training batches of random windows from TRAIN_PHOTOS, a fixed validation set
    of ``val_size`` windows (two per photo of VAL_PHOTOS) with the same motion statistics.

    Args:
        crop: training window side. batch_size: training batch. steps_per_epoch: batches per epoch.
        val_size: validation window side. seed: numpy seed of the training and validation draws.
        shift_range: (lo, hi) motion length in px. input_order: channel order of the inputs.
    """

    def __init__(self, crop=64, batch_size=4, steps_per_epoch=100, val_size=256, seed=0, shift_range=(16, 40),
                 input_order="hdr_first", val_per_photo=2):
        self.crop, self.batch_size, self.steps = int(crop), int(batch_size), int(steps_per_epoch)
        self.seed, self.lo, self.hi, self.input_order = int(seed), int(shift_range[0]), int(shift_range[1]), input_order
        self.train_stacks = [synthesize_stack(load_photo(pkg, name)) for _, pkg, name in TRAIN_PHOTOS]
        rng = np.random.default_rng([self.seed, 1])
        self.val = []
        for _, pkg, name in VAL_PHOTOS:
            stack = synthesize_stack(load_photo(pkg, name))
            for _ in range(val_per_photo):
                self.val.append(random_sample(stack, rng, val_size, self.lo, self.hi, 1, input_order))

    def steps_per_epoch(self):
        return self.steps

    def batches(self, epoch):
        """``steps_per_epoch`` batches ``(x1, x2, x3 (B, 6, S, S), label (B, 3, S, S))`` of ``epoch``."""
        rng = np.random.default_rng([self.seed, 0, int(epoch)])
        for _ in range(self.steps):
            samples = []
            for _ in range(self.batch_size):
                stack = self.train_stacks[int(rng.integers(len(self.train_stacks)))]
                samples.append(random_sample(stack, rng, self.crop, self.lo, self.hi, 1, self.input_order))
            xs = [np.stack([s[0][i] for s in samples]) for i in range(3)]
            yield (*xs, np.stack([s[1] for s in samples]))
