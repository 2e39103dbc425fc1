"""Weight conversion, safe reading and the convert_weights.py CLI.

Expected values come from hand-written name tables, timm state dicts and torch's own
``state_dict()``, never from the converter under test.
"""
import builtins
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from common.weights import (UnsafeCheckpointError, WeightMismatchError, convert_state_dict, read_weights,
                            rename_hook, write_weights)

REPO = Path(__file__).resolve().parents[1]


def _arr(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- name rules


def test_batchnorm_pt2ms_renames_and_drops_num_batches_tracked():
    src = {"bn.weight": _arr(4, seed=1), "bn.bias": _arr(4, seed=2), "bn.running_mean": _arr(4, seed=3),
           "bn.running_var": _arr(4, seed=4), "bn.num_batches_tracked": np.array(7, np.int64)}
    target = {"bn.gamma": (4,), "bn.beta": (4,), "bn.moving_mean": (4,), "bn.moving_variance": (4,)}
    out = convert_state_dict(src, target, "pt2ms")
    assert set(out) == set(target)
    np.testing.assert_array_equal(out["bn.gamma"], src["bn.weight"])
    np.testing.assert_array_equal(out["bn.beta"], src["bn.bias"])
    np.testing.assert_array_equal(out["bn.moving_mean"], src["bn.running_mean"])
    np.testing.assert_array_equal(out["bn.moving_variance"], src["bn.running_var"])


def test_batchnorm_ms2pt_restores_num_batches_tracked_as_int64_zero():
    src = {"bn.gamma": _arr(4, seed=1), "bn.beta": _arr(4, seed=2), "bn.moving_mean": _arr(4, seed=3),
           "bn.moving_variance": _arr(4, seed=4)}
    target = {"bn.weight": (4,), "bn.bias": (4,), "bn.running_mean": (4,), "bn.running_var": (4,),
              "bn.num_batches_tracked": ()}
    out = convert_state_dict(src, target, "ms2pt")
    np.testing.assert_array_equal(out["bn.weight"], src["bn.gamma"])
    np.testing.assert_array_equal(out["bn.running_var"], src["bn.moving_variance"])
    assert out["bn.num_batches_tracked"].dtype == np.int64 and out["bn.num_batches_tracked"].shape == ()
    assert int(out["bn.num_batches_tracked"]) == 0


@pytest.mark.parametrize("pt_key,ms_key", [
    ("norm.weight", "norm.gamma"), ("norm.bias", "norm.beta"),            # LayerNorm / GroupNorm
    ("embed.weight", "embed.embedding_table"),                              # Embedding
    ("act.weight", "act.a"),                                                # PReLU
    ("fc.weight", "fc.weight"), ("cls_token", "cls_token"),                 # unchanged names
])
def test_leaf_renames_both_directions(pt_key, ms_key):
    value = _arr(3, 5)
    out = convert_state_dict({pt_key: value}, {ms_key: (3, 5)}, "pt2ms")
    np.testing.assert_array_equal(out[ms_key], value)
    back = convert_state_dict({ms_key: value}, {pt_key: (3, 5)}, "ms2pt")
    np.testing.assert_array_equal(back[pt_key], value)


def test_conv1d_weight_gets_and_loses_the_extra_axis():
    w = _arr(8, 3, 5)
    out = convert_state_dict({"conv.weight": w}, {"conv.weight": (8, 3, 1, 5)}, "pt2ms")
    assert out["conv.weight"].shape == (8, 3, 1, 5)
    np.testing.assert_array_equal(out["conv.weight"][:, :, 0, :], w)
    back = convert_state_dict(out, {"conv.weight": (8, 3, 5)}, "ms2pt")
    np.testing.assert_array_equal(back["conv.weight"], w)


def test_dtypes_are_kept():
    out = convert_state_dict({"a": np.ones(2, np.float16), "b": np.ones(2, np.int32)}, {"a": (2,), "b": (2,)})
    assert out["a"].dtype == np.float16 and out["b"].dtype == np.int32


def test_rename_hook_is_applied_in_both_directions():
    hook = rename_hook([("blocks.", "layers.")])
    out = convert_state_dict({"blocks.0.norm.weight": _arr(4)}, {"layers.0.norm.gamma": (4,)}, "pt2ms", hooks=[hook])
    assert list(out) == ["layers.0.norm.gamma"]
    back = convert_state_dict(out, {"blocks.0.norm.weight": (4,)}, "ms2pt", hooks=[hook])
    assert list(back) == ["blocks.0.norm.weight"]


def test_mismatch_error_lists_every_missing_unexpected_and_misshaped_key():
    src = {"fc.weight": _arr(10, 4), "bn.weight": _arr(3), "stale.bias": _arr(2), "old.proj": _arr(5)}
    target = {"fc.weight": (12, 4), "bn.gamma": (3,), "bn.beta": (3,), "head.weight": (7, 4)}
    with pytest.raises(WeightMismatchError) as info:
        convert_state_dict(src, target, "pt2ms")
    err = info.value
    assert sorted(err.missing) == [("bn.beta", (3,)), ("head.weight", (7, 4))]
    assert sorted(err.unexpected) == [("old.proj", (5,)), ("stale.bias", (2,))]
    assert err.mismatched == [("fc.weight", (12, 4), "fc.weight", (10, 4))]
    text = str(err)
    for fragment in ("bn.beta (3,)", "head.weight (7, 4)", "old.proj (5,)", "stale.bias (2,)",
                     "fc.weight: target (12, 4), source fc.weight (10, 4)"):
        assert fragment in text


def test_non_strict_tolerates_missing_and_unexpected_but_not_misshaped():
    out = convert_state_dict({"a": _arr(2), "extra": _arr(1)}, {"a": (2,), "b": (3,)}, strict=False)
    assert list(out) == ["a"]
    with pytest.raises(WeightMismatchError):
        convert_state_dict({"a": _arr(2)}, {"a": (3,)}, strict=False)


def test_unknown_direction_is_refused():
    with pytest.raises(ValueError, match="direction"):
        convert_state_dict({}, {}, "tf2ms")


# ---------------------------------------------------------------- round trips through MindSpore


def _timm_state(name):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet18", "deit_tiny_patch16_224"])
def test_pt_to_ms_to_pt_round_trip_is_exact(name):
    import mindspore as ms

    import ms_models
    import pt_reference
    from ms_models.utils.weights import load_pt_state_into, state_numpy
    from pt_reference.utils.weights import load_ms_state_into

    ms.set_device("CPU")
    pt_state = _timm_state(name)
    net = ms_models.create_model(name, num_classes=10)
    load_pt_state_into(net, pt_state)
    fresh = pt_reference.create_model(name, num_classes=10)
    load_ms_state_into(fresh, state_numpy(net))
    back = fresh.state_dict()
    assert set(back) == set(pt_state)
    for key, value in pt_state.items():
        assert back[key].numpy().dtype == value.dtype, key
        np.testing.assert_array_equal(back[key].numpy(), value, err_msg=key)


def test_ms_load_numpy_state_lists_all_mismatches():
    import mindspore as ms

    import ms_models
    from ms_models.utils.weights import load_numpy_state, state_numpy

    ms.set_device("CPU")
    net = ms_models.create_model("resnet18", num_classes=10)
    state = state_numpy(net)
    state.pop("layer1.0.bn1.gamma")
    state["fc.weight"] = np.zeros((3, 512), np.float32)
    state["surplus"] = np.zeros(2, np.float32)
    with pytest.raises(WeightMismatchError) as info:
        load_numpy_state(net, state)
    assert info.value.missing == [("layer1.0.bn1.gamma", (64,))]
    assert info.value.unexpected == [("surplus", (2,))]
    assert info.value.mismatched == [("fc.weight", (10, 512), "fc.weight", (3, 512))]


# ---------------------------------------------------------------- file formats


@pytest.mark.parametrize("ext", [".npz", ".safetensors", ".ckpt", ".pt"])
def test_write_then_read_every_format(tmp_path, ext):
    state = {"a.weight": _arr(3, 4), "a.bias": _arr(4, seed=1), "count": np.array(5, np.int64)}
    path = tmp_path / f"w{ext}"
    write_weights(path, state)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind
    back = read_weights(path)
    assert set(back) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value)


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "params"])
def test_read_torch_checkpoint_containers(tmp_path, wrap):
    sd = {"w": torch.arange(6, dtype=torch.float16).reshape(2, 3), "n": torch.tensor(3)}
    obj = sd if wrap == "plain" else {wrap: sd, "epoch": 4}
    torch.save(obj, tmp_path / "c.pth")
    back = read_weights(tmp_path / "c.pth")
    assert back["w"].dtype == np.float32
    np.testing.assert_array_equal(back["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert back["n"] == 3
    assert read_weights(tmp_path / "c.pth", fp32=False)["w"].dtype == np.float16


def test_read_bf16_safetensors_written_by_torch(tmp_path):
    from safetensors.torch import save_file

    t = torch.tensor([1.5, -2.25, 3.0e-3], dtype=torch.bfloat16)
    save_file({"x": t}, str(tmp_path / "b.safetensors"))
    np.testing.assert_array_equal(read_weights(tmp_path / "b.safetensors")["x"], t.float().numpy())


# ---------------------------------------------------------------- safe unpickling


_FAKE_MODULES = ("yolov6", "yolov6.models", "yolov6.models.yolo", "gold_yolo", "gold_yolo.reppan",
                 "mmcv", "mmcv.cnn", "mmcv.cnn.bricks", "mmcv.cnn.bricks.conv_module")


def _fake_official_model():
    """A module tree whose classes claim to live in yolov6.*, gold_yolo.* and mmcv.cnn.*."""
    mods = {name: types.ModuleType(name) for name in _FAKE_MODULES}

    class ConvModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, bias=False)
            self.bn = torch.nn.SyncBatchNorm(8)
            self.activate = torch.nn.ReLU()
            self.norm_cfg = {"type": "SyncBN", "requires_grad": True}

    class RepGDNeck(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.reduce = ConvModule()
            self.bn = torch.nn.BatchNorm2d(8)
            self.alpha = torch.nn.Parameter(torch.tensor([0.25, 0.5]))
            self.register_buffer("cache", torch.ones(3), persistent=False)
            self.downsample = torch.nn.functional.adaptive_avg_pool2d

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.neck = RepGDNeck()
            self.detect = torch.nn.ModuleList([torch.nn.Conv2d(8, 4, 1), torch.nn.Conv2d(8, 4, 1)])
            self.proj = torch.nn.Parameter(torch.linspace(0, 16, 17), requires_grad=False)
            self.register_buffer("stride", torch.tensor([8.0, 16.0]))

    for cls, module in ((ConvModule, "mmcv.cnn.bricks.conv_module"), (RepGDNeck, "gold_yolo.reppan"),
                        (Model, "yolov6.models.yolo")):
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(mods[module], cls.__name__, cls)
    return mods, Model


def test_whole_module_pickle_is_read_without_its_classes(tmp_path):
    mods, model_cls = _fake_official_model()
    sys.modules.update(mods)
    try:
        torch.manual_seed(0)
        model = model_cls()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-1, 1)
                    m.num_batches_tracked.fill_(11)
        model = model.half()
        expected = {k: (v.float() if v.is_floating_point() else v).numpy().copy()
                    for k, v in model.state_dict().items()}
        torch.save({"model": model, "ema": None, "epoch": -1}, tmp_path / "gold.pt")
    finally:
        for name in mods:
            sys.modules.pop(name, None)
    assert "yolov6.models.yolo" not in sys.modules
    state = read_weights(tmp_path / "gold.pt")
    assert list(state) == list(expected)  # same keys, same order, no non-persistent buffer
    for key, value in expected.items():
        assert state[key].dtype == value.dtype, key
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    assert state["neck.reduce.bn.num_batches_tracked"] == 11


class _Evil:
    """Pickles as a call of ``call(*args)``: what a hostile checkpoint would do."""

    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "subprocess.call"])
def test_pickle_that_runs_code_is_refused_and_never_executed(tmp_path, attack):
    marker = tmp_path / "pwned"
    call, args = {"os.system": (os.system, (f"touch {marker}",)),
                  "builtins.exec": (builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
                  "subprocess.call": (subprocess.call, (["touch", str(marker)],))}[attack]
    path = tmp_path / "evil.pth"
    torch.save({"model": _Evil(call, args)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_weights(path)
    assert str(path) in str(info.value)
    assert info.value.global_name == f"{call.__module__}.{call.__name__}"
    assert not marker.exists()


# ---------------------------------------------------------------- convert_weights.py CLI


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "scripts" / "convert_weights.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def _expected_ms_name(pt_key):
    """Hand-written timm-ResNet -> MindSpore name table (BN layers are bn* and downsample.1)."""
    head, leaf = pt_key.rsplit(".", 1)
    if head.rsplit(".", 1)[-1].startswith("bn") or head.endswith("downsample.1"):
        leaf = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                "running_var": "moving_variance"}[leaf]
    return f"{head}.{leaf}"


def test_convert_weights_cli_both_directions_and_refusal(tmp_path):
    pt_state = _timm_state("resnet18")
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in pt_state.items()}}, tmp_path / "r18.pth")

    done = _run_cli("--src", str(tmp_path / "r18.pth"), "--dst", str(tmp_path / "r18.ckpt"),
                    "--model", "resnet18", "--model-kw", "num_classes=10")
    assert done.returncode == 0, done.stderr
    ms_state = read_weights(tmp_path / "r18.ckpt")
    expected = {_expected_ms_name(k): v for k, v in pt_state.items() if not k.endswith("num_batches_tracked")}
    assert set(ms_state) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(ms_state[key], value, err_msg=key)

    done = _run_cli("--src", str(tmp_path / "r18.ckpt"), "--dst", str(tmp_path / "back.pth"),
                    "--model", "resnet18", "--model-kw", "num_classes=10")
    assert done.returncode == 0, done.stderr
    back = read_weights(tmp_path / "back.pth")
    assert set(back) == set(pt_state)
    for key, value in pt_state.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)

    bad = dict(pt_state, **{"extra.weight": np.zeros((2, 2), np.float32)})
    torch.save({k: torch.from_numpy(v) for k, v in bad.items()}, tmp_path / "bad.pth")
    done = _run_cli("--src", str(tmp_path / "bad.pth"), "--dst", str(tmp_path / "bad.ckpt"),
                    "--model", "resnet34", "--model-kw", "num_classes=7")
    assert done.returncode == 2
    assert not (tmp_path / "bad.ckpt").exists()
    assert "missing     layer1.2.conv1.weight (64, 64, 3, 3)" in done.stderr
    assert "missing     layer3.5.bn2.gamma (256,)" in done.stderr
    assert "unexpected  extra.weight (2, 2)" in done.stderr
    assert "mis-shaped  fc.weight: target (7, 512), source fc.weight (10, 512)" in done.stderr
