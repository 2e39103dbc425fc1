"""CFAM deployment: the two exported towers (MINDIR with an open batch axis, ONNX at a static batch)
reproduce the MindSpore model's global features on real demo batches, and ``ascend/infer.py`` on them
reproduces ``task.evaluate``'s retrieval metrics on the built-in synthetic persons.

Weights: the seeded initialisation of a tiny CFAM with every loss on (ID classifier, MLM branch,
granularity decoder, matching head), so the export also proves those training-only modules are
dropped and the towers still load strictly. Rank metrics (R@K, mAP, mINP) must be equal exactly; mSD
(mean similarity of the true matches, percent) is an average of cosine values, so it carries the
float32 feature differences (measured <= 6e-7) and is compared within 1e-6.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from ascend.infer import main as infer_main
from common.config import load_config
from common.weights import WeightMismatchError, write_weights
from ms_models.cfam.deploy import build_export_parts, infer_overrides, split_weights
from ms_models.cfam.task import build_task
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main
from export_checks import check_towers

TINY = ["model.embed_dim=32", "model.vision_width=32", "model.vision_layers=1", "model.vision_heads=2",
        "model.text_width=32", "model.text_layers=1", "model.text_heads=2", "model.text_length=40",
        "model.num_queries=4", "model.vision_patch_size=8", "data.img_size=[32,16]", "data.synthetic_ids=40",
        "data.synthetic_images_per_id=2", "data.batch_size=8", "loss.mlm=1.0"]
RANK_KEYS = ("R1", "R5", "R10", "mAP", "mINP")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Seeded tiny CFAM (all six losses), its eval metrics and its weight file."""
    cfg = load_config("cfam", TINY)
    ms.set_seed(0)
    task = build_task(cfg)
    assert task.loss_names == ("sdm", "id", "mlm", "gran", "match")
    expected = task.evaluate(task.model)
    path = tmp_path_factory.mktemp("cfam") / "w.npz"
    write_weights(path, state_numpy(task.model))
    return task, expected, path


def _sets():
    return [a for o in TINY for a in ("--set", o)]


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_export_and_infer_reproduce_eval(tmp_path, seeded, fmt):
    task, expected, weights = seeded
    extra = ["--dynamic-batch"] if fmt == "MINDIR" else ["--batch", "3"]
    assert export_main(["--config", "cfam", "--ckpt", str(weights), "--format", fmt, *extra,
                        "--out", str(tmp_path / "cfam"), *_sets()]) == 0
    suffix = fmt.lower()
    info = json.loads(Path(str(tmp_path / f"cfam.text.{suffix}") + ".json").read_text())
    batch = None if fmt == "MINDIR" else 3
    assert info["family"] == "cfam" and info["parts"] == {
        "image": {"file": f"cfam.image.{suffix}",
                  "inputs": [{"name": "images", "shape": [batch, 3, 32, 16], "dtype": "float32"}]},
        "text": {"file": f"cfam.text.{suffix}",
                 "inputs": [{"name": "input_ids", "shape": [batch, 40], "dtype": "int32"}]}}

    # raw outputs on a real demo batch (5 test images, 5 test captions) against the full training model
    model = task.model
    model.set_train(False)
    images = task.data.test_images.batch(range(5))
    ids = task.data.test_tokens[:5]
    check_towers(model, tmp_path / "cfam", suffix, batch, images, ids, 32, "cfam")

    out = tmp_path / "out"
    assert infer_main(["--model", str(tmp_path / f"cfam.text.{suffix}"), "--out", str(out), "--device", "CPU"]) == 0
    got = json.loads((out / "metrics.json").read_text())
    for key in RANK_KEYS:
        assert 0 < expected[key] < 100, (key, expected[key])
    assert set(got) == set(expected) and got["primary"] == "R1"
    msd_diff = max(abs(got[k] - v) for k, v in expected.items() if "mSD" in k)
    print(f"[cfam] {fmt} infer: R1 {got['R1']:.4g} R5 {got['R5']:.4g} mAP {got['mAP']:.4g} mINP {got['mINP']:.4g} "
          f"mSD {got['mSD']:.6g} (eval: R1 {expected['R1']:.4g}, mSD {expected['mSD']:.6g}; max mSD diff "
          f"{msd_diff:.1e})")
    for key, value in expected.items():
        if key == "primary":
            continue
        if key.endswith(RANK_KEYS):
            assert got[key] == value, (key, got[key], value)
        else:
            assert "mSD" in key and abs(got[key] - value) <= 1e-6, (key, got[key], value)


def test_towers_drop_training_modules_and_load_strictly(tmp_path, seeded, capsys):
    task, _, weights_path = seeded
    weights = state_numpy(task.model)
    parts = build_export_parts(task.cfg, weights)
    names = {p: set(net.parameters_dict()) for p, (net, _, _) in parts.items()}
    base = {k for k in weights if k.startswith("base_model.") and k != "base_model.logit_scale"}
    # every CLIP tensor lands in exactly one tower; nothing else is in the graphs
    assert len(names["image"]) + len(names["text"]) == len(base)
    assert {"base_model." + k for k in names["image"]} == {k for k in base if k.startswith("base_model.visual.")}
    assert all(k.startswith("text.") for k in names["text"])
    assert parts["image"][1] == (3, 32, 16) and parts["text"][1][0]["high"] == 49408
    assert parts["image"][2] and parts["text"][2]
    with pytest.raises(ValueError, match="bogus.weight"):
        split_weights({**weights, "bogus.weight": np.zeros(2, np.float32)})
    missing = {k: v for k, v in weights.items() if k != "base_model.ln_final.gamma"}
    with pytest.raises(WeightMismatchError, match="ln_final.gamma"):
        build_export_parts(task.cfg, missing)
    assert infer_overrides(task.cfg, {"image": [[3, 32, 16]], "text": [[40]]}) == []
    assert infer_overrides(task.cfg, {"image": [[3, 64, 32]], "text": [[48]]}) == [
        "data.img_size=[64,32]", "model.text_length=48"]
    # AIR needs the Ascend backend: a clear error on CPU
    assert export_main(["--config", "cfam", "--ckpt", str(weights_path), "--format", "AIR",
                        "--out", str(tmp_path / "cfam"), *_sets()]) == 2
    assert "AIR export needs the Ascend backend" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
