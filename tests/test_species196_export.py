"""Species196 deployment: an exported classifier run back through ``ascend/infer.py`` reproduces every
metric of ``task.evaluate`` (top-1/top-5, macro, per taxonomic level, per supercategory) exactly.

Data: the built-in Species196 fixture (6 classes, 60 val images) at 32 px. Weights: the seeded task
model written as a weight file. Cases: the supervised track's ``species196_cnn`` as ONNX (static
batch 4), and the linear-probe track's ViT (MAE encoder shape, BatchNorm + linear head) as MINDIR with
an open batch axis; its ONNX export stops at MindSpore's missing ``Erf`` converter (exact GELU) with
exit code 2 naming the op. The metrics are compared exactly: they count argmax / top-5 decisions, the
exported logits differ from MindSpore's by less than the smallest top-1/top-2 and top-5/top-6 logit
gap on the val set (asserted and printed), so every decision is the same.
"""
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from ascend.infer import BatchAdapter
from common.config import load_config
from ms_models.export import load_exported
from ms_models.species196.deploy import build_export_net
from ms_models.species196.task import build_task
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main
from export_checks import export_and_infer

ms.set_device("CPU")
ms.runtime.launch_blocking()

BASE = ["data.img_size=32", "data.workers=0", "data.eval_batch_size=25", "report.confusion_png=false"]
PROBE = ["track=linear_probe", "probe.pretrained=null",
         "mae.kwargs={patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2, decoder_embed_dim: 16, "
         "decoder_depth: 1, decoder_num_heads: 2}"]


def _standardise_head(task, head):
    """A seeded classifier's features barely vary between images (every prediction falls into one or
    two classes); rescale its last Linear ``head`` so that each class logit has zero mean and unit
    spread over the val images: the predictions then spread over the classes (numpy, from the model's
    own logits), which makes the exact metric comparison meaningful."""
    model = task.model
    model.set_train(False)
    z = np.concatenate([model(ms.Tensor(x)).asnumpy() for x, _ in task.val_batches]).astype(np.float64)
    mean, std = z.mean(0), z.std(0)
    w, b = head.weight.asnumpy().astype(np.float64), head.bias.asnumpy().astype(np.float64)
    head.weight.set_data(ms.Tensor((w / std[:, None]).astype(np.float32)))
    head.bias.set_data(ms.Tensor(((b - mean) / std).astype(np.float32)))


def _export_and_infer(tmp_path, overrides, fmt, batch_args):
    ms.set_seed(0)
    task = build_task(load_config("species196", overrides))
    _standardise_head(task, task.model.head[1] if task.track == "linear_probe" else task.model.head)
    expected = task.evaluate(task.model, str(tmp_path / "ref"))
    path, got = export_and_infer(tmp_path, "species196", task.model, overrides, fmt, batch_args, "cls")
    return task, expected, path, got


def _check(tmp_path, task, expected, path, got):
    assert 0 < expected["top1"] < 100 and 0 < expected["macro_acc"] < 100
    assert set(got) == set(expected) and {"level_genus", "top5"} <= set(got)
    for key, value in expected.items():
        assert got[key] == value, (key, got[key], value)
    # the same report is written by both (shared evaluation code)
    ref_report = json.loads((tmp_path / "ref" / "species196_metrics.json").read_text())["metrics"]
    inf_report = json.loads((tmp_path / "infer" / "species196_metrics.json").read_text())["metrics"]
    assert inf_report["confusion"] == ref_report["confusion"]
    batch = json.loads(Path(f"{path}.json").read_text())["input_shape"][0]
    run, model = BatchAdapter(load_exported(path), batch), task.model
    diff, scale, preds, gaps = 0.0, 0.0, [], []
    for images, _ in task.val_batches:
        ref = model(ms.Tensor(images)).asnumpy()
        diff = max(diff, float(np.abs(run(images) - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
        preds.append(ref.argmax(1))
        top = -np.sort(-ref, axis=1)
        gaps.append(np.minimum(top[:, 0] - top[:, 1], top[:, 4] - top[:, 5]))
    gap = float(np.concatenate(gaps).min())
    msg = (f"[species196] {path.name}: export vs MindSpore classifier max abs diff {diff:.2e} (max |logit| "
          f"{scale:.3g}); smallest top-1/2 or top-5/6 gap {gap:.2e}; top1 {expected['top1']:.4g} "
          f"macro {expected['macro_acc']:.4g}")
    print(msg)
    assert diff < gap                      # why the metrics can be compared exactly
    assert diff <= 1e-4 * max(1.0, scale)
    assert len(np.unique(np.concatenate(preds))) >= 3          # predictions are not one constant class
    return msg


def test_species196_supervised_cnn_onnx_matches_eval(tmp_path):
    task, expected, path, got = _export_and_infer(tmp_path, BASE, "ONNX", ["--batch", "4"])
    assert json.loads(Path(f"{path}.json").read_text())["input_shape"] == [4, 3, 32, 32]
    _check(tmp_path, task, expected, path, got)


def test_species196_linear_probe_vit_mindir_dynamic_batch_and_onnx_error(tmp_path, capsys):
    overrides = BASE + PROBE
    task, expected, path, got = _export_and_infer(tmp_path, overrides, "MINDIR", ["--dynamic-batch"])
    assert json.loads(Path(f"{path}.json").read_text())["input_shape"] == [None, 3, 32, 32]
    msg = _check(tmp_path, task, expected, path, got)
    capsys.readouterr()
    with capsys.disabled():
        print(msg)
    sets = [a for o in overrides for a in ("--set", o)]
    assert export_main(["--config", "species196", "--ckpt", str(tmp_path / "cls_weights.npz"), "--format", "ONNX",
                        "--out", str(tmp_path / "vit"), *sets]) == 2
    assert "no ONNX converter for the op 'Erf'" in capsys.readouterr().err
    assert not (tmp_path / "vit.onnx").exists()


def test_species196_export_net_per_track(tmp_path, capsys):
    """Each classifier track deploys its task's classifier with the same parameter names (strict load);
    the tracks without a classifier are refused by name."""
    states = []
    for extra in ([], ["track=fixmatch"], PROBE, ["track=finetune", "probe.pretrained=null"] + PROBE[2:]):
        cfg = load_config("species196", BASE + extra)
        ms.set_seed(0)
        task = build_task(cfg)
        state = state_numpy(task.model)
        states.append(state)
        net, chw, dyn_ok = build_export_net(cfg, state)
        assert chw == (3, 32, 32) and dyn_ok
        mine = state_numpy(net)
        assert set(mine) == set(state) and all(np.array_equal(mine[k], state[k]) for k in state), extra
        assert not net.training
    with pytest.raises(ValueError, match="track 'mae_pretrain' has no classifier"):
        build_export_net(load_config("species196", BASE + ["track=mae_pretrain"]), None)
    with pytest.raises(ValueError, match="track 'zero_shot' has no classifier"):
        build_export_net(load_config("species196", BASE + ["track=zero_shot"]), None)
    with pytest.raises(Exception, match="head.bias"):
        build_export_net(load_config("species196", BASE), {k: v for k, v in states[0].items() if k != "head.bias"})
    # without weights the class count is the label map's 6 classes; AIR needs Ascend (clear error, exit 2)
    assert build_export_net(load_config("species196", BASE), None)[0].head.weight.shape[0] == 6
    capsys.readouterr()
    sets = [a for o in BASE for a in ("--set", o)]
    assert export_main(["--config", "species196", "--format", "AIR", "--out", str(tmp_path / "a"), *sets]) == 2
    assert "AIR export needs the Ascend backend" in capsys.readouterr().err
