"""Kalantari reader (BGR, 2^16 scaling, exposures in stops), network inputs, crops, the tiled test
protocol, synthetic stacks; clear errors on malformed scenes."""
import cv2
import numpy as np
import pytest

from common.data.hdr_kalantari import (HDRDataError, KalantariCrops, crop_grid, list_scenes,
                                       read_scene, rotate_flip, scene_inputs, tiled_predict, write_training_crops)
from common.data.hdr_synthetic import cut_sample, synthesize_stack


def _write_scene(folder, h=20, w=28, stops=(-2, 0, 2), seed=0):
    """A scene written with cv2 (which stores BGR as given); returns the uint16 frames and label."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 65536, (3, h, w, 3), dtype=np.uint16)
    for i, name in enumerate(("a_short.tif", "b_mid.tif", "c_long.tif")):
        assert cv2.imwrite(str(folder / name), frames[i])
    label = rng.random((h, w, 3)).astype(np.float32) * 4
    assert cv2.imwrite(str(folder / "HDRImg.hdr"), label)
    (folder / "exposure.txt").write_text("".join(f"{s}\n" for s in stops))
    return frames, label


def test_read_scene_bgr_scaling_and_exposures(tmp_path):
    frames, label = _write_scene(tmp_path / "Test" / "PAPER" / "s1")
    (scene_dir,) = list_scenes(tmp_path / "Test")
    scene = read_scene(scene_dir)
    np.testing.assert_array_equal(scene["ldrs"], frames.astype(np.float32) / 65536.0)   # channel order kept (BGR)
    np.testing.assert_array_equal(scene["exposures"], [0.25, 1.0, 4.0])
    np.testing.assert_allclose(scene["label"], label, rtol=0, atol=4.0 / 128)   # RGBE: 8-bit mantissas, shared exponent
    # raw pixel 0 channel 0 of the file is blue: cv2 reads the same array back
    assert scene["ldrs"][0, 0, 0, 0] == frames[0, 0, 0, 0] / 65536.0
    alt = read_scene(scene_dir, ldr_scale=65535.0)
    np.testing.assert_allclose(alt["ldrs"], frames / 65535.0, rtol=1e-6)


@pytest.mark.parametrize("order", ["hdr_first", "ldr_first"])
def test_scene_inputs_gamma_mapping_and_order(order):
    rng = np.random.default_rng(1)
    ldrs = rng.random((3, 6, 5, 3)).astype(np.float32)
    t = np.array([0.25, 1.0, 4.0])
    xs = scene_inputs(ldrs, t, order)
    for i, x in enumerate(xs):
        hdr = (ldrs[i].astype(np.float64) ** 2.2 / (t[i] + 1e-8)).transpose(2, 0, 1)
        ldr = ldrs[i].transpose(2, 0, 1)
        first, second = (hdr, ldr) if order == "hdr_first" else (ldr, hdr)
        assert x.shape == (6, 6, 5) and x.dtype == np.float32
        np.testing.assert_allclose(x[:3], first, rtol=1e-5)
        np.testing.assert_allclose(x[3:], second, rtol=1e-5)


def test_malformed_scenes_name_the_file(tmp_path):
    _write_scene(tmp_path / "bad")
    (tmp_path / "bad" / "exposure.txt").write_text("0\nzero\n2\n")
    with pytest.raises(HDRDataError, match=r"exposure\.txt.*one number"):
        read_scene(tmp_path / "bad")
    (tmp_path / "bad" / "exposure.txt").write_text("0\n2\n")
    with pytest.raises(HDRDataError, match="expected 3 values"):
        read_scene(tmp_path / "bad")
    (tmp_path / "bad" / "c_long.tif").unlink()
    with pytest.raises(HDRDataError, match="expected 3 LDR"):
        read_scene(tmp_path / "bad")
    cv2.imwrite(str(tmp_path / "bad" / "c_long.tif"), np.zeros((20, 28, 3), np.uint8))
    (tmp_path / "bad" / "exposure.txt").write_text("0\n2\n4\n")
    with pytest.raises(HDRDataError, match=r"c_long\.tif.*16-bit"):
        read_scene(tmp_path / "bad")
    with pytest.raises(HDRDataError, match="not a folder"):
        list_scenes(tmp_path / "missing")


def test_crop_grid_counts():
    assert len(crop_grid(1000, 1500)) == 14 * 22 == 308          # gen_crop_data.py on a Kalantari scene
    assert crop_grid(128, 200, 128, 64) == [(0, 0), (0, 64)]
    assert crop_grid(100, 100) == []


def test_rotate_flip_is_clockwise_rotation_then_vertical_flip():
    a = np.arange(6).reshape(2, 3)
    cw = np.array([[3, 0], [4, 1], [5, 2]])                       # 90 degrees clockwise
    np.testing.assert_array_equal(rotate_flip(a[..., None])[..., 0], cw[::-1])


def test_training_crops_round_trip_and_skip_unreadable(tmp_path):
    frames, _ = _write_scene(tmp_path / "Training" / "s1", h=24, w=40)
    n = write_training_crops(tmp_path / "Training", tmp_path / "crops", size=16, stride=8, rotate=True)
    assert n == 2 * len(crop_grid(24, 40, 16, 8)) == 2 * 8
    crops = KalantariCrops(tmp_path / "crops")
    i = [d.name for d in crops.dirs].index("s1_0001")              # crop index 1: y 0, x 8
    x1, x2, x3, label = crops.sample(i)
    np.testing.assert_array_equal(x2[3:], (frames[1, :16, 8:24] / 65536.0).transpose(2, 0, 1).astype(np.float32))
    assert x1.shape == x3.shape == (6, 16, 16) and label.shape == (3, 16, 16)
    (crops.dirs[0] / "0.tif").unlink()
    with pytest.warns(UserWarning, match="skipping unreadable HDR crop"):
        again = crops.sample(0)
    assert crops.skipped == 1
    np.testing.assert_array_equal(again[0], crops.read(1)[0])
    rot = crops.read([d.name for d in crops.dirs].index("s1_0001_rot"))
    np.testing.assert_array_equal(rot[1][3:], rotate_flip(frames[1, :16, 8:24] / 65536.0).transpose(2, 0, 1))


def test_tiled_predict_pads_with_ones_and_crops_back():
    rng = np.random.default_rng(2)
    inputs = [rng.random((6, 40, 70)).astype(np.float32) for _ in range(3)]
    seen = []

    def predict(x1, x2, x3):
        seen.append(x2.shape)
        return x2[:, 3:] * 2.0

    out = tiled_predict(predict, inputs, tile=32, pad_value=1.0, batch=4)
    np.testing.assert_array_equal(out, inputs[1][3:] * 2.0)
    assert seen == [(4, 6, 32, 32), (4, 6, 32, 32)]              # 2 x 3 tiles, static batch of 4
    border = []
    tiled_predict(lambda a, b, c: border.append(b[0, :, -1, -1].copy()) or b[:, :3], inputs, tile=32)
    np.testing.assert_array_equal(border[-1], np.ones(6, np.float32))   # bottom-right tile corner is padding


def test_synthetic_stack_exposures_and_motion():
    rng = np.random.default_rng(3)
    photo = (rng.random((120, 150, 3)) * 255).astype(np.uint8)
    label, ldrs, t = synthesize_stack(photo)
    np.testing.assert_array_equal(t, [1.0, 4.0, 16.0])
    lin = (photo[:, :, ::-1] / 255.0) ** 2.2                       # BGR
    np.testing.assert_allclose(label, lin, rtol=1e-6)
    np.testing.assert_allclose(ldrs[1], np.clip(lin * 4, 0, 1) ** (1 / 2.2), atol=4e-5)   # 16-bit quantisation
    assert (ldrs[1] >= 65535 / 65536 - 1e-7).mean() > 0.1           # the reference saturates
    inputs, lab = cut_sample((label, ldrs, t), 40, 50, 32, ((-16, 24), (20, -8)))
    np.testing.assert_array_equal(inputs[0][3:], ldrs[0, 24:56, 74:106].transpose(2, 0, 1))
    np.testing.assert_array_equal(inputs[2][3:], ldrs[2, 60:92, 42:74].transpose(2, 0, 1))
    np.testing.assert_array_equal(lab, label[40:72, 50:82].transpose(2, 0, 1))
