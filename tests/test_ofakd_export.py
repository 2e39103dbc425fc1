"""OFA-KD deployment: the student alone is exported (teacher and branch projectors dropped) and, run
back through ``ascend/infer.py``, reproduces the student top-1/top-5 of ``task.evaluate`` exactly.

Weights are a seeded distiller's (``student.backbone.*``, ``teacher.*``, ``projector.*``) written as
a weight file, as a training checkpoint would hold them; data are the built-in 8-class demo photos at
32 px (160 held-out crops). Two students: a Swin with shifted windows (MINDIR with an open batch;
ONNX stops at MindSpore's missing ``Erf`` converter, the exact GELU, with exit code 2 naming the op)
and ResNet-18 (ONNX with a static batch of 2; a static-batch MINDIR is the path of
tests/test_ascend_infer.py). The metrics are compared exactly: they count
argmax / top-5 decisions, and the exported logits differ from MindSpore's by less than the smallest
top-1/top-2 and top-5/top-6 logit gap on the val set (asserted and printed), so every decision is
the same.
"""
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from ascend.infer import BatchAdapter
from common.config import load_config
from ms_models.export import load_exported
from ms_models.ofakd.deploy import build_export_net, student_weights
from ms_models.ofakd.task import build_task
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main
from export_checks import export_and_infer

ms.set_device("CPU")
ms.runtime.launch_blocking()

BASE = ["model.teacher=convnext_tiny", "model.teacher_kwargs={depths: [1, 1, 1, 1], dims: [8, 16, 32, 64]}",
        "teacher.allow_random=true", "teacher.pretrain_epochs=0", "data.workers=0", "data.eval_batch_size=64"]
SWIN = ["model.student=swin_tiny_patch4_window7_224",
        "model.student_kwargs={img_size: 32, embed_dim: 16, depths: [2, 2, 2, 2], num_heads: [1, 2, 4, 8], "
        "window_size: 4}"]
RESNET = ["model.student=resnet18", "model.student_kwargs={}"]


def _export_and_infer(tmp_path, overrides, fmt, batch_args):
    """Seeded task -> (task, evaluate metrics, exported path, infer metrics); asserts both CLIs return 0."""
    ms.set_seed(0)
    task = build_task(load_config("ofakd", overrides))
    expected = task.evaluate(task.model)
    path, got = export_and_infer(tmp_path, "ofakd", task.model, overrides, fmt, batch_args, "student")
    return task, expected, path, got


def _check(task, expected, path, got):
    assert 0 < expected["top1"] < 100 and expected["top1"] <= expected["top5"] < 100
    assert got["top1"] == expected["top1"] and got["top5"] == expected["top5"], (got, expected)
    assert {k for k in got if k.startswith("branch")} == set()      # a deployed student has no branches
    assert {f"branch{s}_top1" for s in task.model.stages} <= set(expected)
    # raw outputs on real demo batches: export vs the distiller's deployable student, and the logits
    # evaluate() scores (stage taps) vs that student
    batch = json.loads(Path(f"{path}.json").read_text())["input_shape"][0]
    run, model = BatchAdapter(load_exported(path), batch), task.model
    diff, taps_diff, scale, preds, gaps = 0.0, 0.0, 0.0, [], []
    for i, (images, _) in enumerate(task.data.val):
        ref = model.predict(ms.Tensor(images)).asnumpy()
        diff = max(diff, float(np.abs(run(images) - ref).max()))
        if i == 0:
            logits, _ = model.branch_logits(ms.Tensor(images))
            taps_diff = float(np.abs(logits.asnumpy() - ref).max())
        scale = max(scale, float(np.abs(ref).max()))
        preds.append(ref.argmax(1))
        top = -np.sort(-ref, axis=1)
        gaps.append(np.minimum(top[:, 0] - top[:, 1], top[:, 4] - top[:, 5]))
    gap = float(np.concatenate(gaps).min())
    msg = (f"[ofakd] {path.name}: export vs MindSpore student max abs diff {diff:.2e} (max |logit| {scale:.3g}); "
          f"taps vs backbone {taps_diff:.2e}; smallest top-1/2 or top-5/6 gap {gap:.2e}; "
          f"top1 {expected['top1']:.4g} top5 {expected['top5']:.4g}")
    print(msg)
    assert diff < gap                      # why the metrics can be compared exactly
    assert diff <= 1e-4 * max(1.0, scale) and taps_diff <= 1e-4 * max(1.0, scale)
    assert len(np.unique(np.concatenate(preds))) >= 3          # predictions are not one constant class
    return msg


def test_ofakd_swin_student_mindir_dynamic_batch_and_onnx_error(tmp_path, capsys):
    overrides = BASE + SWIN
    task, expected, path, got = _export_and_infer(tmp_path, overrides, "MINDIR", ["--dynamic-batch"])
    info = json.loads(Path(f"{path}.json").read_text())
    assert info["input_shape"] == [None, 3, 32, 32]
    msg = _check(task, expected, path, got)
    capsys.readouterr()
    with capsys.disabled():
        print(msg)
    sets = [a for o in overrides for a in ("--set", o)]
    assert export_main(["--config", "ofakd", "--ckpt", str(tmp_path / "student_weights.npz"), "--format", "ONNX",
                        "--out", str(tmp_path / "swin"), *sets]) == 2
    err = capsys.readouterr().err
    assert "no ONNX converter for the op 'Erf'" in err and not (tmp_path / "swin.onnx").exists()


def test_ofakd_resnet_student_onnx_export_infer_matches_eval(tmp_path):
    task, expected, path, got = _export_and_infer(tmp_path, BASE + RESNET, "ONNX", ["--batch", "2"])
    assert json.loads(Path(f"{path}.json").read_text())["input_shape"] == [2, 3, 32, 32]
    _check(task, expected, path, got)


def test_ofakd_student_weights_drop_training_parts_strictly(tmp_path, capsys):
    cfg = load_config("ofakd", BASE + RESNET)
    ms.set_seed(0)
    task = build_task(cfg)
    full = state_numpy(task.model)
    assert any(k.startswith("teacher.") for k in full) and any(k.startswith("projector.") for k in full)
    net, chw, dyn_ok = build_export_net(cfg, full)
    assert chw == (3, 32, 32) and dyn_ok
    mine = state_numpy(net)
    assert set(mine) == {k[len("student.backbone."):] for k in full if k.startswith("student.backbone.")}
    assert all(np.array_equal(mine[k], full["student.backbone." + k]) for k in mine)
    assert set(student_weights(mine)) == set(mine)            # a student-only file passes as it is
    with pytest.raises(ValueError, match="no 'student.backbone"):
        student_weights({k: v for k, v in full.items() if k.startswith("teacher.")})
    with pytest.raises(ValueError, match="outside student.backbone"):
        student_weights({**full, "extra.weight": full["student.backbone.fc.weight"]})
    with pytest.raises(Exception, match="fc.bias"):               # strict: a missing student tensor is named
        build_export_net(cfg, {k: v for k, v in full.items() if k != "student.backbone.fc.bias"})
    with pytest.raises(ValueError, match="data.img_size=64 but the student"):
        build_export_net(load_config("ofakd", BASE + SWIN + ["data.img_size=64"]), None)
    # without weights the class count is the demo set's 8 folders; AIR needs Ascend (clear error, exit 2)
    assert build_export_net(cfg, None)[0].fc.weight.shape[0] == 8
    capsys.readouterr()
    sets = [a for o in BASE + RESNET for a in ("--set", o)]
    assert export_main(["--config", "ofakd", "--format", "AIR", "--out", str(tmp_path / "a"), *sets]) == 2
    assert "AIR export needs the Ascend backend" in capsys.readouterr().err
