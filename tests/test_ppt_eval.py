"""scripts/eval.py (what run_eval_ascend.sh runs) on a PPT model and an ImageNet-format folder.

A tmp ImageFolder (train/ and val/ with two class folders of skimage photo crops) and a MindSpore
checkpoint of random weights: the reported top-1 must equal the accuracy of the same network's
predictions computed here, and ``gmacs`` the analytic count of the configured PPT model.
"""
import json

import mindspore as ms
import numpy as np
from PIL import Image
from skimage import data

from common.config import load_config
from common.data.classification import ClassificationData
from common.weights import write_weights
from ms_models.ppt.macs import ppt_macs
from ms_models.ppt.task import build_task
from ms_models.utils.weights import state_numpy
from scripts.eval import main as eval_main


def _folder(root):
    photos = {"astronaut": data.astronaut(), "coffee": data.coffee()}
    for split, offsets in (("train", (0, 60, 90)), ("val", (120, 180, 240))):
        for name, img in photos.items():
            (root / split / name).mkdir(parents=True)
            for k, o in enumerate(offsets):
                Image.fromarray(img[o:o + 160, o:o + 160]).save(root / split / name / f"{k}.png")


def test_eval_script_on_imagefolder(tmp_path):
    _folder(tmp_path / "imagenet")
    overrides = [f"data.root={tmp_path / 'imagenet'}", "ppt.r=8", "ppt.pp_loc_list=[1,2]", "ppt.tau=1e-3",
                 "model.kwargs={img_size: 32, patch_size: 4, embed_dim: 64, depth: 3, num_heads: 2}",
                 "data.batch_size=4", "data.eval_batch_size=6", "data.workers=0"]
    cfg = load_config("ppt", overrides)
    task = build_task(cfg)
    write_weights(tmp_path / "w.ckpt", state_numpy(task.model))
    args = ["--config", "ppt", "--ckpt", str(tmp_path / "w.ckpt"), "--device", "CPU", "--out", str(tmp_path / "out")]
    assert eval_main(args + [x for o in overrides for x in ("--set", o)]) == 0
    metrics = json.loads((tmp_path / "out" / "eval_metrics.json").read_text())
    net = task.model
    net.set_train(False)
    preds, labels = [], []
    for images, y in ClassificationData(cfg).val:
        preds.append(net(ms.Tensor(images)).asnumpy().argmax(-1))
        labels.append(y)
    top1 = 100 * float((np.concatenate(preds) == np.concatenate(labels)).mean())
    macs = ppt_macs(64, 3, 2, img_size=32, patch_size=4, num_classes=2, r=8, pp_loc_list=[1, 2])["total"]
    print(f"[ppt] eval.py: {metrics}; direct top-1 {top1:.1f}, analytic {macs / 1e9:.5f} GMACs")
    assert metrics["primary"] == "top1" and abs(metrics["top1"] - top1) < 1e-9
    assert abs(metrics["gmacs"] - macs / 1e9) < 1e-12
