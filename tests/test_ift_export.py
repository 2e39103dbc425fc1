"""IFT deployment: the fusion network exported with static (6, T, T) exposure tiles x1, x2, x3
(MINDIR with an open batch; ONNX is a clear error naming ``Erf``, the exact GELU), and
``ascend/infer.py`` reproducing ``task.evaluate``'s tiled PSNR-l/-mu and SSIM-l/-mu on the
built-in synthetic stacks.

Sizes: the LSH-backend IFT of tests/test_ift_task.py (C 8, one block, window 4, p 4, k 2), 24 px
synthetic test stacks evaluated in 16 px tiles, so every stack is padded (with eval.pad_value) to
32 px and cut into four tiles; seeded (untrained) weights.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from ascend.infer import main as infer_main
from common.config import load_config
from common.weights import write_weights
from ms_models.export import load_exported
from ms_models.ift.deploy import build_export_net, infer_overrides
from ms_models.ift.task import build_task
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main

ms.set_device("CPU")
ms.runtime.launch_blocking()

OVERRIDES = [
    "model.embed_dim=8", "model.depths=[1]", "model.num_heads=[2]", "model.window_size=4", "model.patch_size=4",
    "model.k=2", "model.scf_heads=2", "model.fgps_backend=lsh", "model.n_hashes=2", "model.n_buckets=4",
    "model.chunk_size=8", "data.batch_size=2", "data.demo_crop=16", "data.demo_val_size=24",
    "data.demo_val_per_photo=1", "data.demo_steps_per_epoch=1", "eval.tile=16", "eval.max_scenes=2",
]


def test_export_net_inputs_and_infer_overrides():
    cfg = load_config("configs/ift/demo.yaml", OVERRIDES)
    net, specs, dyn = build_export_net(cfg)
    assert dyn and [(s["name"], s["shape"], s["dtype"]) for s in specs] == [
        ("x1", [6, 16, 16], "float32"), ("x2", [6, 16, 16], "float32"), ("x3", [6, 16, 16], "float32")]
    assert infer_overrides(cfg, [6, 16, 16]) == [] and infer_overrides(cfg, [6, 32, 32]) == ["eval.tile=32"]
    with pytest.raises(ValueError, match="ONNX graph of model.fgps_backend=lsh does not run.*Sort to a TopK"):
        build_export_net(load_config("configs/ift/demo.yaml", OVERRIDES + ["export.gelu=erf_free"]))
    with pytest.raises(ValueError, match="'eval.tile' = 18 must be a multiple of 4"):
        build_export_net(load_config("configs/ift/demo.yaml", OVERRIDES + ["eval.tile=18"]))


def test_mindir_infer_reproduces_tiled_eval_and_onnx_names_erf(tmp_path, capsys):
    cfg = load_config("configs/ift/demo.yaml", OVERRIDES)
    ms.set_seed(0)
    task = build_task(cfg)
    expected = task.evaluate(task.model)
    print(f"eval: {expected}")
    # non-degenerate: an untrained network, neither perfect nor constant
    assert 3.0 < expected["psnr_mu"] < 60.0 and 0.0 < expected["ssim_mu"] < 0.99
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    args = ["--config", "configs/ift/demo.yaml", "--ckpt", str(weights),
            *[a for o in OVERRIDES for a in ("--set", o)]]

    assert export_main(args + ["--format", "ONNX", "--out", str(tmp_path / "hdr")]) == 2
    assert "no ONNX converter for the op 'Erf'" in capsys.readouterr().err
    assert not (tmp_path / "hdr.onnx").exists()

    assert export_main(args + ["--format", "MINDIR", "--dynamic-batch", "--batch", "2",
                               "--out", str(tmp_path / "hdr")]) == 0      # checked at batch 2 and 3
    model = tmp_path / "hdr.mindir"
    info = json.loads(Path(str(model) + ".json").read_text())
    assert [(s["name"], s["shape"]) for s in info["inputs"]] == [(n, [None, 6, 16, 16]) for n in ("x1", "x2", "x3")]

    # raw outputs on real tiles: the top-left and bottom-right 16 px tiles of the first two stacks
    samples = list(task.data.eval_samples())
    xs = [np.stack([s[1][j][:, :16, :16] for s in samples] + [s[1][j][:, 8:, 8:] for s in samples])
          for j in range(3)]
    ref = task.model(*[ms.Tensor(x) for x in xs]).asnumpy()
    got = load_exported(model)(*xs)[0]
    diff = float(np.abs(got - ref).max())
    print(f"MINDIR vs network on {len(ref)} demo tiles: max abs diff {diff:.3g}")
    assert got.shape == (4, 3, 16, 16) and diff <= 1e-5
    assert np.abs(ref[0] - ref[2]).max() > 1e-3     # different tiles, different outputs

    out = tmp_path / "out"
    assert infer_main(["--model", str(model), "--out", str(out), "--device", "CPU"]) == 0
    got_metrics = json.loads((out / "metrics.json").read_text())
    print(f"infer: {got_metrics}")
    for key in ("psnr_l", "psnr_mu", "ssim_l", "ssim_mu"):
        assert abs(got_metrics[key] - expected[key]) <= 1e-6, (key, got_metrics[key], expected[key])
    assert got_metrics["primary"] == "psnr_mu"


def test_onnx_with_erf_free_gelu_reproduces_eval(tmp_path):
    """``export.gelu=erf_free`` (polynomial erf, |error| <= 1.5e-7) makes the graph ONNX-exportable
    with the 'exact' FGPS backend of the demo; infer on it is compared with ``task.evaluate`` of the
    trained (erf GELU) network."""
    overrides = OVERRIDES + ["model.fgps_backend=exact"]
    cfg = load_config("configs/ift/demo.yaml", overrides)
    ms.set_seed(1)
    task = build_task(cfg)
    expected = task.evaluate(task.model)
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    assert export_main(["--config", "configs/ift/demo.yaml", "--ckpt", str(weights), "--format", "ONNX",
                        "--batch", "2", "--out", str(tmp_path / "hdr"), "--set", "export.gelu=erf_free",
                        *[a for o in overrides for a in ("--set", o)]]) == 0
    out = tmp_path / "out"
    assert infer_main(["--model", str(tmp_path / "hdr.onnx"), "--out", str(out), "--device", "CPU"]) == 0
    got = json.loads((out / "metrics.json").read_text())
    net = build_export_net(load_config("configs/ift/demo.yaml", overrides + ["export.gelu=erf_free"]),
                           state_numpy(task.model))[0]
    same_form = task.evaluate(net)
    print(f"ONNX erf-free: eval {expected}, eval of the erf-free MindSpore net {same_form}, infer {got}")
    assert 3.0 < expected["psnr_mu"] < 60.0
    # onnxruntime's kernels round differently from MindSpore's (raw tiles below: ~1e-6 apart), and
    # PSNR-l of an untrained net (MSE ~0.2) moves by 4.34 dMSE/MSE: measured 1.2e-6 dB, 3e-7 SSIM-l.
    # The erf-free GELU itself moves the metrics by ~1e-8 (same_form vs expected).
    for key in ("psnr_l", "psnr_mu", "ssim_l", "ssim_mu"):
        assert abs(got[key] - same_form[key]) <= 1e-5, (key, got[key], same_form[key])
        assert abs(same_form[key] - expected[key]) <= 1e-6, (key, same_form[key], expected[key])
    samples = list(task.data.eval_samples())
    xs = [np.stack([smp[1][j][:, :16, :16] for smp in samples]) for j in range(3)]
    ref = task.model(*[ms.Tensor(x) for x in xs]).asnumpy()
    diff = float(np.abs(load_exported(tmp_path / "hdr.onnx")(*xs)[0] - ref).max())
    print(f"ONNX (erf-free) vs the trained network on demo tiles: max abs diff {diff:.3g}")
    assert diff <= 1e-5
