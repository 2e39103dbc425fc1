"""DUKD through the engine in both frameworks: a few compiled iterations on the built-in demo
photos, evaluation (PSNR/SSIM-Y, PSNR(student, teacher)), the frozen teacher, identical losses."""
import numpy as np
import mindspore as ms
import torch

from common.config import load_config
from common.runlog import read_jsonl
from ms_models.dukd import task as ms_task
from ms_models.engine import Trainer as MsTrainer
from ms_models.utils.weights import load_pt_state_into, state_numpy as ms_state
from pt_reference.dukd import task as pt_task
from pt_reference.engine import Trainer as PtTrainer
from pt_reference.utils.weights import state_numpy as pt_state

ms.set_device("CPU")
ms.runtime.launch_blocking()


def _cfg(*extra):
    return load_config("configs/dukd/demo.yaml", [
        "model.kwargs={num_feat: 8, num_block: 1, upscale: 2, img_range: 255.0}",
        "teacher.kwargs={num_feat: 8, num_block: 2, upscale: 2, img_range: 255.0}", "teacher.allow_random=true",
        "dukd.method=dukd", "dukd.noisy_prob=0.3", "dukd.zoom_out=true", "data.lr_patch=8", "data.batch_size=2",
        "data.demo_max_side=64", "data.demo_eval_hr=32", "data.enlarge_ratio=1", "eval.max_images=2",
        "train.max_steps=3", "train.epochs=1", "train.log_interval=0", "optim.lr=1e-3", "ema.decay=0.5", *extra])


def test_dukd_trains_and_evaluates_in_both_frameworks(tmp_path):
    cfg = _cfg()
    torch.manual_seed(0)
    pt = pt_task.build_task(cfg)
    msk = ms_task.build_task(cfg)
    load_pt_state_into(msk.model, pt_state(pt.model))
    load_pt_state_into(msk.teacher, {f"teacher.{k}": v for k, v in pt_state(pt.teacher).items()})
    teacher_before = pt_state(pt.teacher)
    student_before = pt_state(pt.model)
    assert all(not p.requires_grad for p in msk.teacher.get_parameters())
    group_ids = {id(p) for g in pt.param_groups(pt.model) for p in g["params"]}
    assert not group_ids & {id(p) for p in pt.teacher.parameters()}
    out_pt = PtTrainer(pt, cfg, tmp_path / "pt").fit()
    out_ms = MsTrainer(msk, cfg, tmp_path / "ms").fit()
    for out in (out_pt, out_ms):
        assert out["primary"] == "demo/psnr_y" and out["train"]["steps"] == 3
        assert 5.0 < out["demo/psnr_y"] < 60.0 and 0.0 < out["demo/ssim_y"] <= 1.0
        assert out["demo/psnr_st"] > 5.0 and "demo/teacher_psnr_y" in out
    assert abs(out_ms["demo/psnr_y"] - out_pt["demo/psnr_y"]) < 0.05
    rows = {fw: [r for r in read_jsonl(tmp_path / fw / "metrics.jsonl") if "loss" in r] for fw in ("pt", "ms")}
    assert len(rows["pt"]) == len(rows["ms"]) == 3
    for a, b in zip(rows["pt"], rows["ms"]):
        for k in ("loss", "pix", "kd", "zoom_in", "zoom_out_pix", "zoom_out_kd"):
            assert abs(a[k] - b[k]) <= 1e-4 * abs(a[k]), (k, a[k], b[k])
    for k, v in pt_state(pt.teacher).items():
        np.testing.assert_array_equal(v, teacher_before[k])                 # the teacher is frozen
    assert np.array_equal(ms_state(msk.teacher)["teacher.conv_first.weight"], teacher_before["conv_first.weight"])
    assert max(np.abs(pt_state(pt.model)[k] - student_before[k]).max() for k in student_before) > 1e-4


def test_scratch_and_kd_use_the_engine_step():
    for method, names in (("scratch", ("pix",)), ("kd", ("pix", "kd"))):
        t = ms_task.build_task(_cfg(f"dukd.method={method}"))
        assert t.build_train_step is None and t.loss_names == names
        b = next(t.train_batches(0))
        assert len(b) == 2 and b[0].shape == (2, 3, 8, 8) and b[1].shape == (2, 3, 16, 16)
