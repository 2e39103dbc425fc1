"""LightCLIP deployment: the two exported towers (MINDIR with an open batch axis, ONNX at a static
batch) reproduce the MindSpore model's global embeddings on real demo batches, ``ascend/infer.py`` on
them reproduces ``task.evaluate``'s zero-shot and retrieval metrics on the built-in shapes set, and the
paper's encoders (MobileNetV2, EfficientNet-Lite0 with its ImageNet weights) export to ONNX and to a
dynamic-batch MINDIR.

Weights: the seeded initialisation of a tiny LightCLIP with all three losses (patch projection,
fusion blocks and MLM head present, so the export proves they are dropped). A random image tower maps
every image close to one shared direction (ReLU features are positive), which makes zero-shot predict
one class for (nearly) all images (seed 0: accuracy exactly 1/24, held-out 0, by construction); the
global projection's bias is therefore set to centre the zero-shot image embeddings (a seeded, numpy-computed weight edit, like
Gold-YOLO's zeroed class biases in tests/test_ascend_infer.py), so predictions spread over classes.
All metrics are argmax / rank based and must be equal exactly.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from ascend.infer import main as infer_main
from common.config import load_config
from common.weights import WeightMismatchError, write_weights
from ms_models.export import export_network, load_exported
from ms_models.lightclip.deploy import build_export_parts, infer_overrides, split_weights
from ms_models.lightclip.task import build_task
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main
from export_checks import check_towers

TINY = ["model.tiny_width=8", "model.embed_dim=16", "model.text_width=16", "model.text_layers=2",
        "model.text_heads=2", "data.batch_size=8", "data.num_train=32", "data.num_test=64", "data.zs_per_pair=4"]
KEYS = ("zs_acc", "zs_acc_held", "zs_acc_seen", "i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Seeded tiny LightCLIP (inst + tok + MLM/fusion), zero-shot image embeddings centred; its eval
    metrics and weight file."""
    cfg = load_config("lightclip", TINY)
    ms.set_seed(0)
    task = build_task(cfg)
    model = task.model
    model.set_train(False)
    assert hasattr(model, "mlm_head") and len(model.fusion) == 2
    feats = model.visual.forward_features(ms.Tensor(task.data.set.zs_images)).mean((2, 3)).asnumpy()
    w = model.global_proj.weight.asnumpy().astype(np.float64)
    model.global_proj.bias.set_data(ms.Tensor((-w @ feats.mean(0).astype(np.float64)).astype(np.float32)))
    expected = task.evaluate(model)
    path = tmp_path_factory.mktemp("lightclip") / "w.npz"
    write_weights(path, state_numpy(model))
    return task, expected, path


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_export_and_infer_reproduce_eval(tmp_path, seeded, fmt):
    task, expected, weights = seeded
    sets = [a for o in TINY for a in ("--set", o)]
    extra = ["--dynamic-batch"] if fmt == "MINDIR" else ["--batch", "3"]
    assert export_main(["--config", "lightclip", "--ckpt", str(weights), "--format", fmt, *extra,
                        "--out", str(tmp_path / "lc"), *sets]) == 0
    suffix = fmt.lower()
    info = json.loads(Path(str(tmp_path / f"lc.image.{suffix}") + ".json").read_text())
    batch = None if fmt == "MINDIR" else 3
    assert info["family"] == "lightclip" and info["parts"] == {
        "image": {"file": f"lc.image.{suffix}",
                  "inputs": [{"name": "images", "shape": [batch, 3, 32, 32], "dtype": "float32"}]},
        "text": {"file": f"lc.text.{suffix}",
                 "inputs": [{"name": "input_ids", "shape": [batch, 24], "dtype": "int32"}]}}

    # raw outputs on real demo batches (5 retrieval images, 5 prompts) against the full training model
    model = task.model
    images, ids = task.data.set.test_images[:5], task.data.prompt_ids[:5]
    check_towers(model, tmp_path / "lc", suffix, batch, images, ids, 16, "lightclip")

    out = tmp_path / "out"
    assert infer_main(["--model", str(tmp_path / f"lc.image.{suffix}"), "--out", str(out), "--device", "CPU"]) == 0
    got = json.loads((out / "metrics.json").read_text())
    for key in KEYS:
        assert 0 < expected[key] < 100, (key, expected[key])
    assert abs(expected["zs_acc"] - 100 / 24) > 1e-9  # not the one-class collapse
    print(f"[lightclip] {fmt} infer: " + ", ".join(f"{k} {got[k]:.4g}" for k in KEYS))
    assert got == expected


def test_towers_drop_training_modules_and_load_strictly(tmp_path, seeded):
    task, _, _ = seeded
    weights = state_numpy(task.model)
    parts = build_export_parts(task.cfg, weights)
    names = {p: set(net.parameters_dict()) for p, (net, _, _) in parts.items()}
    kept = {k for k in weights if not k.startswith(("patch_proj.", "fusion.", "mlm_head.", "logit_scale"))}
    assert names["image"] | names["text"] == kept and not names["image"] & names["text"]
    assert any(k.startswith("fusion.") for k in weights) and any(k.startswith("mlm_head.") for k in weights)
    assert parts["image"][1] == (3, 32, 32)
    assert parts["text"][1][0]["high"] == task.data.vocab_size < 100  # the compact demo vocabulary
    with pytest.raises(ValueError, match="bogus.weight"):
        split_weights({**weights, "bogus.weight": np.zeros(2, np.float32)})
    with pytest.raises(WeightMismatchError, match="global_proj.bias"):
        build_export_parts(task.cfg, {k: v for k, v in weights.items() if k != "global_proj.bias"})
    assert infer_overrides(task.cfg, {"image": [[3, 32, 32]], "text": [[24]]}) == []
    assert infer_overrides(task.cfg, {"image": [[3, 64, 64]], "text": [[32]]}) == [
        "data.img_size=[64,64]", "model.text_length=32"]


@pytest.mark.parametrize("encoder", ["mobilenetv2_100", "efficientnet_lite0"])
def test_paper_image_encoders_export(tmp_path, encoder):
    """The image tower with the paper's encoders (Lite0 with its ImageNet weights) at 64 px: ONNX and a
    MINDIR with an open batch axis equal the full model's ``encode_image`` on rendered shapes
    (BatchNorm in inference form). Lite0's
    TF-"SAME" stride-2 convs pad asymmetrically, which MindSpore's ONNX converter gets wrong; the
    deploy form pads explicitly (``PaddedConv``), and the export must match."""
    from common.data.lightclip_shapes import render
    from ms_models.utils.weights import load_numpy_state

    overrides = [f"model.image_encoder={encoder}", "data.img_size=[64,64]", "model.embed_dim=16",
                 "model.text_width=16", "model.text_layers=1", "model.text_heads=2", "data.num_train=8",
                 "data.num_test=8", "data.zs_per_pair=1",
                 f"model.pretrained_image={'true' if encoder == 'efficientnet_lite0' else 'false'}"]
    cfg = load_config("lightclip", overrides)
    ms.set_seed(0)
    model = build_task(cfg).model
    state = state_numpy(model)
    if encoder == "mobilenetv2_100":
        # the default init makes every embedding the same to 1e-9 (activations vanish through 17 blocks):
        # seeded He-scaled convs and non-trivial BatchNorm statistics instead
        rng = np.random.default_rng(1)
        for k, v in state.items():
            if not k.startswith("visual."):
                continue
            if v.ndim == 4:
                state[k] = rng.standard_normal(v.shape) * np.sqrt(2.0 / np.prod(v.shape[1:]))
            elif k.endswith(("gamma", "moving_variance")):
                state[k] = rng.uniform(0.5, 1.5, v.shape)
            elif k.endswith(("beta", "moving_mean")):
                state[k] = rng.normal(0.0, 0.1, v.shape)
        state = {k: v.astype(np.float32) for k, v in state.items()}
        load_numpy_state(model, state)
    model.set_train(False)
    net, chw, _ = build_export_parts(cfg, state)["image"]
    rng = np.random.default_rng(0)
    objects = [[("red", "circle", "large", "top left")], [("blue", "cross", "small", "bottom right")],
               [("yellow", "triangle", "large", "top right"), ("white", "square", "small", "bottom left")]]
    x = np.stack([render(o, (64, 64), rng) for o in objects]).astype(np.float32)
    ref = model.encode_image(ms.Tensor(x)).asnumpy()
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    got = load_exported(export_network(net, (3,) + chw, tmp_path / encoder, "ONNX"))(x)[0]
    diff = float(np.abs(got - ref).max())
    dyn = load_exported(export_network(net, (3,) + chw, tmp_path / encoder, "MINDIR", dynamic_batch=True))
    dyn_diff = max(float(np.abs(dyn(x[:b])[0] - ref[:b]).max()) for b in (3, 2))
    print(f"[lightclip] {encoder} image tower vs encode_image: ONNX max abs diff {diff:.2e}, MINDIR (open batch, "
          f"run at 3 and 2) {dyn_diff:.2e} (max |ref| {np.abs(ref).max():.3g})")
    assert diff <= tol and dyn_diff <= tol
    assert np.abs(ref[0] - ref[1]).max() > 1e-3  # the images give distinct embeddings
