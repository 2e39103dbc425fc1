"""ascend/infer.py: an exported MINDIR (GraphCell) or ONNX (onnxruntime) model, run through the
family's own eval pipeline, reproduces the metric of the MindSpore model it came from.

Each case trains nothing: weights are the seeded initialisation (Gold-YOLO's class biases zeroed so
that every anchor passes the confidence threshold and NMS, the AP computation and the letterbox
mapping all carry real detections).
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ascend.infer import BatchAdapter, main as infer_main  # noqa: E402
from common.config import load_config  # noqa: E402
from common.weights import write_weights  # noqa: E402
from ms_models.utils.weights import state_numpy  # noqa: E402
from scripts.export import main as export_main  # noqa: E402


def _metrics(out_dir):
    return json.loads((Path(out_dir) / "metrics.json").read_text())


def test_batch_adapter_chunks_and_pads():
    seen = []

    def run(x):
        seen.append(x.shape[0])
        return [x.sum(axis=(1, 2, 3)), x[:, :1, 0, 0] * 2]

    x = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3)
    a, b = BatchAdapter(run, batch=2)(x)
    assert seen == [2, 2, 2]  # the fifth image is padded to a full batch, its pad row dropped
    np.testing.assert_array_equal(a, x.sum(axis=(1, 2, 3)))
    np.testing.assert_array_equal(b, x[:, :1, 0, 0] * 2)
    single = BatchAdapter(lambda x: [x[:, 0, 0, 0]], batch=None)(x)
    np.testing.assert_array_equal(single, x[:, 0, 0, 0])


def test_infer_reports_missing_model_and_config(tmp_path, capsys):
    assert infer_main(["--model", str(tmp_path / "none.mindir")]) == 2
    assert "does not exist" in capsys.readouterr().err
    path = tmp_path / "m.mindir"
    path.write_bytes(b"\0")
    assert infer_main(["--model", str(path)]) == 2
    assert "pass --config" in capsys.readouterr().err
    txt = tmp_path / "m.air"
    txt.write_bytes(b"\0")
    assert infer_main(["--model", str(txt)]) == 2
    assert "expected a .mindir or .onnx" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_classification_export_infer_matches_eval(tmp_path, fmt):
    from ms_models.classification.task import build_task
    overrides = ["data.img_size=32", "data.workers=0"]
    cfg = load_config("classification", overrides)
    ms.set_seed(0)
    task = build_task(cfg)
    expected = task.evaluate(task.model)
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    sets = [a for o in overrides for a in ("--set", o)]
    assert export_main(["--config", "classification", "--ckpt", str(weights), "--format", fmt, "--batch", "3",
                        "--out", str(tmp_path / "cls"), *sets]) == 0
    model = tmp_path / f"cls.{fmt.lower()}"
    info = json.loads(Path(str(model) + ".json").read_text())
    assert info["family"] == "classification" and info["input_shape"] == [3, 3, 32, 32]
    assert infer_main(["--model", str(model), "--out", str(tmp_path / "out"), "--device", "CPU"]) == 0
    got = _metrics(tmp_path / "out")
    assert 0 < expected["top1"] < 100
    assert got["top1"] == expected["top1"] and got["top5"] == expected["top5"]


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_gold_yolo_export_infer_matches_eval(tmp_path, fmt):
    from ms_models.gold_yolo.task import build_task
    overrides = ["data.img_size=128", "data.demo_train_images=4", "data.demo_val_images=4", "data.workers=0",
                 "train.batch_size=2",
                 "eval.batch_size=3", "eval.plot_images=0"]
    cfg = load_config("gold_yolo", overrides + ["eval.mode=square"])
    ms.set_seed(0)
    task = build_task(cfg)
    for p in task.model.get_parameters():
        if "cls_preds" in p.name and p.name.endswith("bias"):
            p.set_data(ms.Tensor(np.zeros(p.shape, np.float32)))
    expected = task.evaluate(task.model, str(tmp_path / "ref"))
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    sets = [a for o in overrides for a in ("--set", o)]
    assert export_main(["--config", "gold_yolo", "--ckpt", str(weights), "--format", fmt, "--batch", "2",
                        "--out", str(tmp_path / "det"), *sets]) == 0
    out = tmp_path / "out"
    assert infer_main(["--model", str(tmp_path / f"det.{fmt.lower()}"), "--out", str(out), "--device", "CPU"]) == 0
    got = _metrics(out)
    for key in ("mAP50_95", "mAP50", "AR100"):
        assert abs(got[key] - expected[key]) <= 1e-6, (key, got[key], expected[key])
    # Untrained weights score ~0 mAP, so the detections themselves are compared: same images,
    # classes, boxes (original-image pixels, after the letterbox inverse) and scores.
    def rows(folder):
        dets = json.loads((Path(folder) / "eval" / "predictions.json").read_text())
        return sorted((d["image_id"], d["category_id"], *d["bbox"], d["score"]) for d in dets)
    ref, mine = np.array(rows(tmp_path / "ref")), np.array(rows(out))
    assert len(ref) > 50
    assert ref.shape == mine.shape
    np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize("family", ["ppt", "rpg"])
def test_classifier_families_export_infer_matches_eval(tmp_path, family):
    """PPT (token reduction inside the exported graph) and RPG (masked, exactly sparse weights)."""
    import importlib
    cfg = load_config(family, ["data.workers=0"])
    ms.set_seed(0)
    task = importlib.import_module(f"ms_models.{family}.task").build_task(cfg)
    expected = task.evaluate(task.model)
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    assert export_main(["--config", family, "--ckpt", str(weights), "--format", "MINDIR", "--dynamic-batch",
                        "--out", str(tmp_path / family), "--set", "data.workers=0"]) == 0
    out = tmp_path / "out"
    assert infer_main(["--model", str(tmp_path / f"{family}.mindir"), "--out", str(out), "--device", "CPU"]) == 0
    got = _metrics(out)
    assert 0 < expected["top1"] < 100
    assert got["top1"] == expected["top1"] and got["top5"] == expected["top5"]


def test_batch_adapter_keeps_integer_inputs():
    seen = []

    def run(ids, mask):
        seen.append((ids.dtype, mask.dtype, ids.shape[0]))
        return [(ids * mask).sum(axis=1)]

    ids = np.arange(15).reshape(5, 3)
    mask = (np.arange(15).reshape(5, 3) % 2).astype(np.float64)
    got = BatchAdapter(run, batch=2, dtypes=["int32", "int32"])(ids, mask)
    assert seen == [(np.int32, np.int32, 2)] * 3
    np.testing.assert_array_equal(got, (ids * mask).sum(axis=1))
    with pytest.raises(ValueError, match="takes 2 inputs, got 1"):
        BatchAdapter(run, batch=2, dtypes=["int32", "int32"])(ids)


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_export_typed_multi_input_graph(tmp_path, fmt):
    """Token ids (int32) and a float mask through an embedding: exported with typed input specs and
    run back, equal to the network; the ONNX inputs carry the spec names."""
    from mindspore import nn, ops
    from ms_models.export import export_network, input_specs, load_exported, sample_inputs

    class Bag(nn.Cell):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 4)

        def construct(self, ids, mask):
            return ops.sum(self.emb(ids) * mask.expand_dims(-1), 1)

    ms.set_seed(0)
    net = Bag()
    specs = input_specs([{"name": "input_ids", "shape": [6], "dtype": "int32", "high": 11},
                         {"name": "mask", "shape": [6], "dtype": "float32"}])
    path = export_network(net, (3,), tmp_path / "bag", fmt, inputs=specs)
    ids, mask = sample_inputs(specs, 3, np.random.default_rng(1))
    assert ids.dtype == np.int32 and ids.max() < 11 and mask.dtype == np.float32
    ref = net(ms.Tensor(ids), ms.Tensor(mask)).asnumpy()
    got = load_exported(path)(ids, mask)[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    if fmt == "ONNX":
        import onnxruntime as ort
        names = [i.name for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]
        assert names == ["input_ids", "mask"]
    with pytest.raises(Exception, match="dtype 'int8'"):
        input_specs([{"name": "x", "shape": [2], "dtype": "int8"}])


def test_vit_exports_to_onnx_only_with_erf_free_gelu(tmp_path, capsys):
    """Exact GELU has no ONNX converter in MindSpore 2.10: the plain export names Erf and the flag;
    with --erf-free-gelu the PPT ViT (token pruning/pooling inside the graph) exports, the export
    check passes (1e-4) and infer.py reproduces the eval metric."""
    cfg = load_config("ppt", ["data.workers=0"])
    ms.set_seed(0)
    from ms_models.ppt.task import build_task
    task = build_task(cfg)
    expected = task.evaluate(task.model)
    weights = tmp_path / "w.npz"
    write_weights(weights, state_numpy(task.model))
    args = ["--config", "ppt", "--ckpt", str(weights), "--format", "ONNX", "--batch", "4",
            "--out", str(tmp_path / "vit"), "--set", "data.workers=0"]
    assert export_main(args) == 2
    err = capsys.readouterr().err
    assert "no ONNX converter for the op 'Erf'" in err and "--erf-free-gelu" in err
    assert export_main(args + ["--erf-free-gelu"]) == 0
    assert "GELU cells replaced" in capsys.readouterr().err
    model = tmp_path / "vit.onnx"
    assert json.loads(Path(str(model) + ".json").read_text())["erf_free_gelu"] is True
    out = tmp_path / "out"
    assert infer_main(["--model", str(model), "--out", str(out), "--device", "CPU"]) == 0
    got = _metrics(out)
    assert 0 < expected["top1"] < 100
    assert got["top1"] == expected["top1"] and got["top5"] == expected["top5"]


def test_erf_free_gelu_is_within_float32_rounding_of_exact_gelu():
    """The polynomial erf (Abramowitz & Stegun 7.1.26) against float64 math.erf."""
    import math
    from ms_models.layers.erf_free import ErfFreeGELU
    x = np.linspace(-10, 10, 20001).astype(np.float32)
    ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    got = ErfFreeGELU()(ms.Tensor(x)).asnumpy()
    assert np.abs(got - ref).max() <= 1e-6
