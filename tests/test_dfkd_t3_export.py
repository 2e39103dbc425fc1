"""DFKD-T3 deployment: the student classifier exported through scripts/export.py reloads, matches the
MindSpore student on tokenised demo sentences, and ascend/infer.py reproduces ``task.evaluate``'s
student metric; ONNX is refused with an error naming the op (``Erf`` of the exact GELU).

The task is the tiny test configuration without preparation (MiniLM student layer, nothing trained).
Its seeded classifier alone predicts one class for every sentence (pooled MiniLM outputs differ
little), which would make the metric comparison empty, so the classifier is redrawn from a numpy
seed (scaled so the logit margins spread ~1) and its bias put in the widest gap of the middle half
of the sorted margins: both classes are predicted, no sentence sits near the decision boundary, and
the accuracy differs from what a one-class predictor would score. The weight file is the whole
DFKD-T3 system (generator, teacher, student), as a training checkpoint holds it; export keeps the
student.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from ascend.infer import main as infer_main
from common.config import load_config
from common.weights import read_weights, write_weights
from ms_models.dfkd_t3.deploy import build_export_net, infer_overrides
from ms_models.export import load_exported
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main
from tests.test_dfkd_t3_task import TINY

CONFIG = "configs/dfkd_t3/demo.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    old = os.environ.get("DFKD_T3_CACHE")
    os.environ["DFKD_T3_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # nothing may land in ~/.cache
    from ms_models.dfkd_t3.task import DFKDT3Task
    cfg = load_config(CONFIG, TINY)
    task = DFKDT3Task(cfg, prepare=False)
    student = task.model.student
    ids, mask = task.encode(task.dev_text[0])
    pooled = student.bert(ms.Tensor(ids), ms.Tensor(mask))[1].asnumpy().astype(np.float64)
    w = np.random.default_rng(0).standard_normal((2, pooled.shape[1]))
    w /= np.std(pooled @ (w[1] - w[0]))  # margins spread ~1 (the pooled outputs differ by ~1e-3)
    raw = pooled @ (w[1] - w[0])
    margin, labels = np.sort(raw), np.asarray(task.dev_text[1])
    lo, hi = len(margin) // 4, 3 * len(margin) // 4
    constant = {np.mean(labels == 0), np.mean(labels == 1)}  # what a one-class predictor scores
    for k in lo + np.argsort(-np.diff(margin[lo:hi + 1])):
        b = np.array([0.0, -(margin[k] + margin[k + 1]) / 2])
        if np.mean((raw + b[1] > 0) == labels) not in constant:
            break
    student.classifier.weight.set_data(ms.Tensor(w.astype(np.float32)))
    student.classifier.bias.set_data(ms.Tensor(b.astype(np.float32)))
    expected = task.evaluate(task.model)
    weights = tmp_path_factory.mktemp("w") / "dfkd_t3.npz"
    write_weights(weights, state_numpy(task.model))
    yield task, expected, weights, (ids, mask)
    if old is None:
        os.environ.pop("DFKD_T3_CACHE", None)
    else:
        os.environ["DFKD_T3_CACHE"] = old


def _export(tmp_path, weights, fmt, *extra):
    out = tmp_path / "student"
    code = export_main(["--config", CONFIG, "--ckpt", str(weights), "--format", fmt, "--out", str(out),
                        *extra, *[a for o in TINY for a in ("--set", o)]])
    return code, Path(f"{out}.{fmt.lower()}")


def test_export_net_is_the_student(built):
    task, _, weights, _ = built
    full = read_weights(weights)
    net, inputs, dyn_ok = build_export_net(task.cfg, full)
    assert dyn_ok
    assert [(s["name"], s["shape"], s["dtype"], s["high"]) for s in inputs] == \
        [("input_ids", [16], "int32", 30522), ("attention_mask", [16], "int32", 2)]
    mine = state_numpy(net)
    assert set(mine) == {k[len("student."):] for k in full if k.startswith("student.")}
    for k, v in mine.items():
        np.testing.assert_array_equal(v, full["student." + k])
    with pytest.raises(ValueError, match="no 'student"):
        build_export_net(task.cfg, {k: v for k, v in full.items() if not k.startswith("student.")})


@pytest.mark.parametrize("batch", [["--batch", "5"], ["--dynamic-batch"]], ids=["static5", "dynamic"])
def test_mindir_export_infer_matches_eval(built, tmp_path, batch):
    task, expected, weights, (ids, mask) = built
    code, path = _export(tmp_path, weights, "MINDIR", *batch)
    assert code == 0
    info = json.loads(Path(f"{path}.json").read_text())
    dim = None if batch == ["--dynamic-batch"] else 5
    assert info["family"] == "dfkd_t3"
    assert info["inputs"] == [{"name": "input_ids", "shape": [dim, 16], "dtype": "int32"},
                              {"name": "attention_mask", "shape": [dim, 16], "dtype": "int32"}]
    # raw outputs on tokenised demo sentences (padded rows included) against the MindSpore student
    run = load_exported(path)
    diffs = []
    for n in ((5,) if dim else (5, 7)):
        ref = task.model.student(ms.Tensor(ids[:n]), ms.Tensor(mask[:n])).asnumpy()
        got = run(ids[:n], mask[:n])[0]
        assert got.shape == (n, 2)
        diffs.append(float(np.abs(got - ref).max()))
    print(f"[dfkd_t3] MINDIR {batch} vs MindSpore student on demo sentences: max abs diff {max(diffs):.2e}")
    assert max(diffs) <= 1e-5
    out = tmp_path / "infer"
    assert infer_main(["--model", str(path), "--out", str(out), "--device", "CPU"]) == 0
    got = json.loads((out / "metrics.json").read_text())
    preds = task.predictor(task.model.student)(ids, mask)
    labels = np.asarray(task.dev_text[1])
    assert 0 < expected["student_metric"] < 1 and min(np.bincount(preds.argmax(1), minlength=2)) >= 4
    assert expected["student_metric"] not in (np.mean(labels == 0), np.mean(labels == 1))
    assert np.abs(preds[:, 1] - preds[:, 0]).min() > 1e-3  # no near-tie an export rounding could flip
    assert got["primary"] == "student_metric" and got["metric"] == "accuracy"
    assert got["student_metric"] == expected["student_metric"]
    if dim == 5:
        # --config without the length: infer_overrides sets data.max_len from the graph's input shape
        assert infer_overrides(task.cfg, [16]) == [] and infer_overrides(task.cfg, [24]) == ["data.max_len=24"]
        sets = [a for o in TINY if not o.startswith("data.max_len") for a in ("--set", o)]
        assert infer_main(["--model", str(path), "--config", CONFIG, *sets, "--out", str(out), "--device", "CPU"]) == 0
        assert json.loads((out / "metrics.json").read_text())["student_metric"] == expected["student_metric"]


def test_onnx_export_names_the_missing_op(built, tmp_path, capsys):
    _, _, weights, _ = built
    code, path = _export(tmp_path, weights, "ONNX")
    err = capsys.readouterr().err
    assert code == 2
    assert "no ONNX converter for the op 'Erf'" in err
    assert not path.exists()
