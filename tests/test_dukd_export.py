"""DUKD deployment: the student SR network exported with a static LR tile (MINDIR with an open
batch, ONNX for EDSR; SwinIR's ONNX export is a clear error naming ``Erf``), and
``ascend/infer.py`` reproducing ``task.evaluate``'s tiled PSNR/SSIM-Y on the built-in demo photos.

Sizes: 48 px HR demo crops (24 px LR), 16 px tiles overlapping by 4 px, so every image is four
overlapping tiles that are averaged where they meet; seeded (untrained) students.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn

from ascend.infer import main as infer_main
from common.config import load_config
from common.weights import write_weights
from ms_models.dukd.deploy import build_export_net, infer_overrides
from ms_models.layers.erf_free import ErfFreeGELU
from common.sr_task import tile_corners, tiled_super_resolve
from ms_models.dukd.task import build_task
from ms_models.export import load_exported
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main

ms.set_device("CPU")
ms.runtime.launch_blocking()

EDSR = "model.kwargs={num_feat: 8, num_block: 1, upscale: 2, img_range: 255.0}"
SWINIR = ("model.kwargs={upscale: 2, img_size: 16, window_size: 4, img_range: 1.0, depths: [1], embed_dim: 12, "
          "num_heads: [2], mlp_ratio: 2.0, drop_path_rate: 0.0}")
COMMON = ["model.name={}", "data.lr_patch=8", "data.demo_max_side=64", "data.demo_eval_hr=48",
          "eval.max_images=3", "eval.tile=16", "eval.tile_overlap=4", "eval.tile_batch=3"]


def _overrides(name, kwargs):
    return [COMMON[0].format(name), kwargs, *COMMON[1:]]


def _seeded_task(overrides, seed=0):
    ms.set_seed(seed)
    return build_task(load_config("configs/dukd/demo.yaml", overrides))


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_tiled_super_resolve_stitches_like_whole_image_upsampling():
    """With a position-free predictor (nearest x2), tiling with overlaps, the last tile flush with
    the edge and the reflect padding of a too-small image all give the whole-image result; with a
    per-tile constant predictor the overlaps average the tiles that cover them."""
    rng = np.random.default_rng(0)
    calls = []

    def nearest(t):
        calls.append(t.shape)
        return t.repeat(2, axis=-2).repeat(2, axis=-1)

    x = rng.random((1, 3, 21, 30), dtype=np.float32)
    got = tiled_super_resolve(nearest, x, 2, tile=8, overlap=3, batch=4)
    np.testing.assert_array_equal(got, nearest(x))
    assert tile_corners(21, 8, 3) == [0, 5, 10, 13] and tile_corners(30, 8, 3) == [0, 5, 10, 15, 20, 22]
    assert [c[0] for c in calls[:-1]] == [4] * 6 and sum(c[0] for c in calls[:-1]) == 24  # 4 x 6 tiles in 4s
    small = rng.random((1, 3, 5, 9), dtype=np.float32)
    np.testing.assert_array_equal(tiled_super_resolve(nearest, small, 2, tile=8, overlap=2), nearest(small))

    counter = iter(range(1, 100))
    const = lambda t: np.stack([np.full((3, 16, 16), next(counter), np.float32) for _ in t])  # noqa: E731
    y = tiled_super_resolve(const, np.zeros((1, 3, 8, 13), np.float32), 2, tile=8, overlap=3, batch=1)[0, 0]
    # x origins 0 and 5 (tiles 1 and 2): LR columns 5-7 (SR 10-15) are covered by both
    assert y[0, 0] == 1 and y[0, 25] == 2 and y[0, 10] == 1.5 and y[0, 15] == 1.5 and y[0, 9] == 1


def test_tile_options_are_checked():
    with pytest.raises(ValueError, match="eval.tile_overlap' = 16 must be >= 0 and smaller than eval.tile"):
        _seeded_task(_overrides("edsr", EDSR)[:-2] + ["eval.tile_overlap=16"]).tiling()
    with pytest.raises(ValueError, match="eval.tile' = 18 must be a multiple of the model's window_size 4"):
        _seeded_task(_overrides("swinir", SWINIR) + ["eval.tile=18"]).tiling()
    cfg = load_config("configs/dukd/demo.yaml", [])
    assert cfg.eval.tile is None and build_task(cfg).tiling() == (0, 16, 1)  # default: whole images
    # the graph of a whole-image config takes data.lr_patch tiles; infer then tiles at that side
    net, chw, dyn = build_export_net(cfg)
    assert chw == (3, 24, 24) and dyn
    assert infer_overrides(cfg, chw) == ["eval.tile=24"]
    kd = load_config("configs/dukd/edsr_x2.yaml", ["eval.tile=48"])
    # no teacher and no DIV2K training folders at inference
    assert infer_overrides(kd, (3, 48, 48)) == ["dukd.method=scratch", "data.train_hr=null"]
    adapted = load_config("configs/dukd/edsr_x2.yaml", ["eval.tile=48", *infer_overrides(kd, (3, 48, 48))])
    assert adapted.data.train_hr is None and adapted.dukd.method == "scratch"


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_edsr_export_infer_reproduces_tiled_eval(tmp_path, fmt):
    overrides = _overrides("edsr", EDSR)
    task = _seeded_task(overrides)
    expected = task.evaluate(task.model)
    whole = _seeded_task(overrides[:-3])
    whole_metrics = whole.evaluate(task.model)
    print(f"{fmt}: tiled eval {expected}, whole-image eval {whole_metrics}")
    assert 8.0 < expected["demo/psnr_y"] < 40.0 and 0.05 < expected["demo/ssim_y"] < 0.99  # non-degenerate
    # tiling is a different protocol: close to, but not equal to, whole-image inference
    assert 0 < abs(expected["demo/psnr_y"] - whole_metrics["demo/psnr_y"]) < 0.5

    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    batch = ["--dynamic-batch", "--batch", "2"] if fmt == "MINDIR" else ["--batch", "3"]
    assert export_main(["--config", "configs/dukd/demo.yaml", "--ckpt", str(weights), "--format", fmt, *batch,
                        "--out", str(tmp_path / "sr"), *_sets(overrides)]) == 0
    model = tmp_path / f"sr.{fmt.lower()}"
    info = json.loads(Path(str(model) + ".json").read_text())
    assert info["input_shape"] == [None if fmt == "MINDIR" else 3, 3, 16, 16]

    # raw outputs on real demo tiles (the first LR image's four tiles)
    lr = task.data.eval_sets["demo"][0][2]
    x = (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)
    tiles = np.stack([x[:, y:y + 16, z:z + 16] for y in (0, 8) for z in (0, 8)])[:3]
    ref = task.model(ms.Tensor(tiles)).asnumpy()
    got = load_exported(model)(tiles)[0]
    diff = float(np.abs(got - ref).max())
    print(f"{fmt}: export vs network on demo tiles, max abs diff {diff:.3g} (max |out| {np.abs(ref).max():.3g})")
    assert got.shape == (3, 3, 32, 32) and diff <= 1e-5

    out = tmp_path / "out"
    assert infer_main(["--model", str(model), "--out", str(out), "--device", "CPU"]) == 0
    got_metrics = json.loads((out / "metrics.json").read_text())
    print(f"{fmt}: infer {got_metrics}")
    for key in ("demo/psnr_y", "demo/ssim_y"):
        assert abs(got_metrics[key] - expected[key]) <= 1e-6, (key, got_metrics[key], expected[key])
    assert got_metrics["primary"] == "demo/psnr_y"


def test_swinir_mindir_infer_reproduces_eval_and_onnx_names_erf(tmp_path, capsys):
    overrides = _overrides("swinir", SWINIR)
    task = _seeded_task(overrides)
    expected = task.evaluate(task.model)
    assert 5.0 < expected["demo/psnr_y"] < 40.0
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    args = ["--config", "configs/dukd/demo.yaml", "--ckpt", str(weights), *_sets(overrides)]
    assert export_main(args + ["--format", "ONNX", "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert "no ONNX converter for the op 'Erf'" in err
    assert not (tmp_path / "sw.onnx").exists()
    assert export_main(args + ["--format", "MINDIR", "--batch", "3", "--out", str(tmp_path / "sw")]) == 0
    assert export_main(args + ["--format", "ONNX", "--batch", "3", "--set", "export.gelu=erf_free",
                               "--out", str(tmp_path / "sw")]) == 0
    lr = task.data.eval_sets["demo"][1][2]
    x = (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)
    tiles = np.stack([x[:, :16, :16], x[:, 8:, 8:], x[:, :16, 8:]])
    ref = task.model(ms.Tensor(tiles)).asnumpy()
    for suffix in ("mindir", "onnx"):
        diff = float(np.abs(load_exported(tmp_path / f"sw.{suffix}")(tiles)[0] - ref).max())
        print(f"SwinIR {suffix} vs the network on demo tiles: max abs diff {diff:.3g} (max |out| {np.abs(ref).max():.3g})")
        assert diff <= 1e-5
        out = tmp_path / f"out_{suffix}"
        assert infer_main(["--model", str(tmp_path / f"sw.{suffix}"), "--out", str(out), "--device", "CPU"]) == 0
        got = json.loads((out / "metrics.json").read_text())
        print(f"SwinIR {suffix}: eval {expected}, infer {got}")
        for key in ("demo/psnr_y", "demo/ssim_y"):
            assert abs(got[key] - expected[key]) <= 1e-6, (suffix, key, got[key], expected[key])


def test_erf_free_gelu_matches_the_erf_form():
    from scipy.special import erf
    x = np.linspace(-10, 10, 200001).astype(np.float32)
    ref = 0.5 * x.astype(np.float64) * (1.0 + erf(x.astype(np.float64) / np.sqrt(2.0)))
    got = ErfFreeGELU()(ms.Tensor(x)).asnumpy()
    err = np.abs(got - ref)
    exact = np.abs(nn.GELU(approximate=False)(ms.Tensor(x)).asnumpy() - ref).max()
    print(f"vs float64 erf GELU, max abs error: ErfFreeGELU {err.max():.3g}, MindSpore's erf GELU {exact:.3g}")
    assert err.max() < 1e-6   # float32 rounding level (MindSpore's own erf GELU: 4.5e-7)
    tanh_form = np.abs(nn.GELU(approximate=True)(ms.Tensor(x)).asnumpy() - ref).max()
    assert tanh_form > 1e-4   # the check can tell the tanh approximation apart
