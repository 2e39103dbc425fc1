"""DUKD evaluation protocol in both frameworks: with ``eval.tile`` set, the PyTorch twin runs the same
overlapped tiling (``common.sr_task.tiled_super_resolve``) as MindSpore, so the tiled PSNR/SSIM-Y and
agree on shared weights; the tiled numbers differ from whole-image ones."""
import torch

from common.config import load_config
from ms_models.dukd import task as ms_task
from ms_models.utils.weights import load_pt_state_into
from parity_tests.harness import assert_close
from pt_reference.dukd import task as pt_task
from pt_reference.utils.weights import state_numpy

OVERRIDES = ["model.kwargs={num_feat: 8, num_block: 1, upscale: 2, img_range: 255.0}",
             "teacher.kwargs={num_feat: 12, num_block: 1, upscale: 2, img_range: 255.0}", "teacher.allow_random=true",
             "data.lr_patch=8", "data.demo_max_side=64", "data.demo_eval_hr=48", "eval.max_images=3",
             "eval.tile_overlap=4", "eval.tile_batch=3"]


def _metrics(tile):
    cfg = load_config("configs/dukd/demo.yaml", OVERRIDES + [f"eval.tile={tile}"])
    torch.manual_seed(0)
    pt = pt_task.build_task(cfg)
    msk = ms_task.build_task(cfg)
    load_pt_state_into(msk.model, state_numpy(pt.model))
    if pt.teacher is not None:
        load_pt_state_into(msk.teacher, {f"teacher.{k}": v for k, v in state_numpy(pt.teacher).items()})
    return msk.evaluate(msk.model), pt.evaluate(pt.model)


def test_tiled_eval_matches_between_frameworks():
    ms_tiled, pt_tiled = _metrics(16)
    ms_whole, pt_whole = _metrics("null")
    keys = [k for k in ms_tiled if k.endswith(("psnr_y", "ssim_y"))]
    assert "demo/psnr_y" in keys
    for k in keys:
        assert_close(f"DUKD tiled eval {k}", ms_tiled[k], pt_tiled[k], "forward")
        assert_close(f"DUKD whole-image eval {k}", ms_whole[k], pt_whole[k], "forward")
    # the twin really tiles: its tiled PSNR differs from its whole-image PSNR
    assert abs(pt_tiled["demo/psnr_y"] - pt_whole["demo/psnr_y"]) > 1e-3
