"""The IFT task through the MindSpore engine with the compiled (GRAPH) train step: static-shape
batches, weights move, loss finite, evaluation reports the four HDR metrics; data.root errors."""
from pathlib import Path

import numpy as np
import pytest

from common.config import load_config
from common.data.hdr_task import HDRTaskData
from common.runlog import read_jsonl
from ms_models.engine import Trainer
from ms_models.ift.task import build_task
from ms_models.utils.weights import state_numpy

OVERRIDES = [
    "model.embed_dim=8", "model.depths=[1]", "model.num_heads=[2]", "model.window_size=4", "model.patch_size=4",
    "model.k=2", "model.scf_heads=2", "model.fgps_backend=lsh", "model.n_hashes=1", "model.n_buckets=4",
    "model.chunk_size=8", "data.batch_size=2", "data.demo_crop=16", "data.demo_val_size=16",
    "data.demo_val_per_photo=1", "data.demo_steps_per_epoch=2", "train.epochs=1", "train.graph_mode=true",
    "train.log_interval=0", "optim.lr=0.005", "eval.tile=16",
]


def test_graph_train_step_moves_weights_and_evaluates(tmp_path):
    cfg = load_config("configs/ift/demo.yaml", OVERRIDES)
    task = build_task(cfg)
    batches = list(task.train_batches(0))
    assert len(batches) == task.steps_per_epoch() == 2
    assert {tuple(a.shape) for b in batches for a in b[:3]} == {(2, 6, 16, 16)}
    assert all(b[3].shape == (2, 3, 16, 16) and b[3].dtype == np.float32 for b in batches)
    before = {k: v.copy() for k, v in state_numpy(task.model).items()}
    final = Trainer(task, cfg, tmp_path).fit()
    after = state_numpy(task.model)
    losses = [r["loss"] for r in read_jsonl(Path(tmp_path) / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 2 and np.isfinite(losses).all()
    moved = [k for k in before if np.abs(after[k] - before[k]).max() > 1e-4]
    assert "scf_1.cross_attn.kv.weight" in moved and "conv_last.weight" in moved
    np.testing.assert_array_equal(after["fgps.rotations"], before["fgps.rotations"])   # hashing is fixed
    assert final["primary"] == "psnr_mu" and {"psnr_l", "psnr_mu", "ssim_l", "ssim_mu"} <= set(final)
    assert np.isfinite(final["psnr_mu"]) and 0 < final["ssim_mu"] <= 1


def test_missing_kalantari_root_is_named(tmp_path):
    cfg = load_config("configs/ift/demo.yaml", [f"data.root={tmp_path}", f"data.crop_dir={tmp_path / 'nope'}"])
    with pytest.raises(ValueError, match="nope.*crop folder not found"):
        HDRTaskData(cfg)


def test_kalantari_root_crops_batches_and_tiled_eval(tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_ift_data import _write_scene
    monkeypatch.setenv("NOAH_MS_DATA", str(tmp_path / "cache"))
    _write_scene(tmp_path / "k17" / "Training" / "a", h=40, w=48, seed=1)
    _write_scene(tmp_path / "k17" / "Test" / "EXTRA" / "b", h=20, w=28, seed=2)
    cfg = load_config("configs/ift/demo.yaml", [f"data.root={tmp_path / 'k17'}", "data.crop_size=16",
                                                "data.crop_stride=8", "data.batch_size=4", "eval.tile=16"])
    data = HDRTaskData(cfg)
    assert len(data.crops) == 4 * 5 and data.steps_per_epoch() == 5
    assert len(list((tmp_path / "cache").glob("kalantari_crops_*"))) == 1
    e0, e1 = list(data.train_batches(0)), list(data.train_batches(1))
    assert len(e0) == 5 and all(b[0].shape == (4, 6, 16, 16) for b in e0)
    assert not np.array_equal(e0[0][0], e1[0][0])                   # a new order every epoch
    np.testing.assert_array_equal(e0[0][0], next(iter(HDRTaskData(cfg).train_batches(0)))[0])
    calls = []
    metrics = data.evaluate(lambda a, b, c: calls.append(b.shape) or np.clip(b[:, :3], 0, 1), tmp_path / "run")
    assert calls == [(1, 6, 16, 16)] * 4                             # 20 x 28 padded to 32 x 32: 4 tiles
    assert metrics["primary"] == "psnr_mu" and np.isfinite(metrics["psnr_l"])
    assert (tmp_path / "run" / "eval_tonemapped.png").exists()
