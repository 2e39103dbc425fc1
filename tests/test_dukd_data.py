"""SR data: DIV2K-style and benchmark folders, paired crops with flips/rotations, DUKD's zoom-in
cells and label-consistency masks, and the 180-degree quirk of the released augmentation inverse."""
import numpy as np
import pytest
from PIL import Image

from common.data.sr_data import (AUG_OPS, PairedPatchSampler, augment_np, bicubic_lr, label_consistency_masks,
                                 load_benchmark, paired_paths, zoom_in_cells, zoom_in_patches)
from common.sr_resize import imresize


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_div2k_style_pairs_and_patch_alignment(tmp_path):
    rng = np.random.default_rng(0)
    lrs = [rng.integers(0, 256, (8, 10, 3)).astype(np.uint8) for _ in range(3)]
    for i, lr in enumerate(lrs):
        # HR = LR with every pixel repeated 3 x 3: an aligned crop keeps gt[::3, ::3] == lq under any flip
        _write(tmp_path / "HR" / f"{i:04d}.png", np.repeat(np.repeat(lr, 3, 0), 3, 1))
        _write(tmp_path / "LR" / f"{i:04d}x3.png", lr)
    pairs = paired_paths(tmp_path / "HR", tmp_path / "LR", 3)
    assert [p[0].name for p in pairs] == ["0000.png", "0001.png", "0002.png"]
    sampler = PairedPatchSampler(pairs, 3, 4, batch_size=2, enlarge_ratio=2, hflip=True, rot=True)
    assert sampler.steps_per_epoch() == 3
    batches = list(sampler.batches(np.random.default_rng(1)))
    assert len(batches) == 3
    for lq, gt in batches:
        assert lq.shape == (2, 3, 4, 4) and gt.shape == (2, 3, 12, 12) and lq.dtype == np.float32
        np.testing.assert_array_equal(gt[:, :, ::3, ::3], lq)        # flips/transposes applied to both alike
    (tmp_path / "LR" / "0001x3.png").unlink()
    with pytest.raises(FileNotFoundError, match="0001.png"):
        paired_paths(tmp_path / "HR", tmp_path / "LR", 3)


def test_corrupt_pair_is_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    _write(tmp_path / "HR" / "a.png", good)
    _write(tmp_path / "LR" / "ax2.png", good[::2, ::2])
    (tmp_path / "HR" / "b.png").write_bytes(b"not a png")
    (tmp_path / "LR" / "bx2.png").write_bytes(b"not a png")
    sampler = PairedPatchSampler(paired_paths(tmp_path / "HR", tmp_path / "LR", 2), 2, 4, batch_size=2,
                                 enlarge_ratio=2)
    with pytest.warns(UserWarning, match="skipping training pair"):
        batches = list(sampler.batches(np.random.default_rng(0)))
    assert len(batches) == 2 and sampler.skipped >= 1


def test_benchmark_folders_with_and_without_lr(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (26, 33, 3)).astype(np.uint8)
    _write(tmp_path / "Set5" / "HR" / "bird.png", hr)
    items = load_benchmark(tmp_path, "Set5", 4)            # no LR folder: MATLAB bicubic of the mod-cropped HR
    name, hr_c, lr = items[0]
    assert name == "bird" and hr_c.shape == (24, 32, 3) and lr.shape == (6, 8, 3)
    ref = np.round(np.clip(imresize(hr[:24, :32] / 255.0, 0.25), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(lr, ref)
    _write(tmp_path / "Set5" / "LR_bicubic" / "X4" / "birdx4.png", bicubic_lr(hr, 4))
    assert np.array_equal(load_benchmark(tmp_path, "Set5", 4)[0][2], lr)
    _write(tmp_path / "Set5" / "LR_bicubic" / "X4" / "birdx4.png", lr[:5])
    with pytest.raises(ValueError, match="is not 4 x LR"):
        load_benchmark(tmp_path, "Set5", 4)


def test_zoom_in_cells_and_patches():
    cells = zoom_in_cells(3, 2, np.random.default_rng(5))
    perm = np.random.default_rng(5).permutation(9)[:2]
    assert cells == [(int(k) // 3, int(k) % 3) for k in perm]                # the official grid order
    gt = np.arange(2 * 3 * 12 * 12, dtype=np.float32).reshape(2, 3, 12, 12)
    z = zoom_in_patches(gt, [(2, 1), (0, 0)], 4)
    assert z.shape == (2, 2, 3, 4, 4)
    np.testing.assert_array_equal(z[1, 0], gt[1, :, 8:12, 4:8])
    np.testing.assert_array_equal(z[0, 1], gt[0, :, 0:4, 0:4])
    with pytest.raises(ValueError, match="n_sub"):
        zoom_in_cells(2, 5, np.random.default_rng(0))


def test_masks_follow_the_official_draw_order():
    """Cell-major sample order and op after op, as the released code's np.random.choice draws."""
    m = label_consistency_masks(3, 2, 0.3, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    ref = np.stack([rng.random(6) < 0.3 for _ in AUG_OPS], 1)               # (6, 4), sample k = cell * 3 + b
    for cell in range(2):
        for b in range(3):
            np.testing.assert_array_equal(m[b, cell], ref[cell * 3 + b])


def test_reverse_inverse_undoes_and_reuse_rotates_transposed_single_flips():
    """A then reverse(A) is the identity; A then A is the identity except for t combined with exactly
    one of h/v, which leaves a 180-degree rotation (the released code's quirk)."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 3, 5, 5))
    masks = np.array([[i, h, v, t] for i in (0, 1) for h in (0, 1) for v in (0, 1) for t in (0, 1)], np.float32)
    fwd = augment_np(x, masks, "forward")
    np.testing.assert_array_equal(augment_np(fwd, masks, "reverse"), x)
    twice = augment_np(fwd, masks, "forward")
    for n, (i, h, v, t) in enumerate(masks.astype(bool)):
        if t and (h != v):
            np.testing.assert_array_equal(twice[n], x[n][:, ::-1, ::-1])
        else:
            np.testing.assert_array_equal(twice[n], x[n])


def test_reuse_quirk_rate_is_12_6_percent_at_p_0_3():
    """Expected fraction of zoom-in samples with a rotated target: p * 2 p (1 - p) = 0.126."""
    m = label_consistency_masks(1000, 20, 0.3, np.random.default_rng(0)).reshape(-1, 4).astype(bool)
    quirk = m[:, 3] & (m[:, 1] != m[:, 2])
    n = quirk.size
    se = np.sqrt(0.126 * 0.874 / n)
    assert abs(quirk.mean() - 0.126) < 4 * se
    assert abs(m.mean() - 0.3) < 4 * np.sqrt(0.21 / m.size)
