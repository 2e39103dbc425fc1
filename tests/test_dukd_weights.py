"""BasicSR checkpoints (weights under 'params') load strictly into both trees; BasicSR key names
are checked against listings written from basicsr/archs/*_arch.py; the original RCAN release
converts; mismatches are refused with the keys named."""
import numpy as np
import pytest
import mindspore as ms
import torch

import ms_models
import pt_reference
from common.sr_weights import rcan_official_to_basicsr
from common.weights import WeightMismatchError
from ms_models.dukd.task import load_sr_weights as ms_load
from ms_models.utils.weights import state_numpy as ms_state
from pt_reference.dukd.task import load_sr_weights as pt_load
from pt_reference.utils.weights import state_numpy as pt_state

ms.set_device("CPU")
ms.runtime.launch_blocking()


def _conv(prefix):
    return [f"{prefix}.weight", f"{prefix}.bias"]


def edsr_keys(num_block, n_up):
    keys = _conv("conv_first")
    for b in range(num_block):
        keys += _conv(f"body.{b}.conv1") + _conv(f"body.{b}.conv2")
    keys += _conv("conv_after_body") + sum((_conv(f"upsample.{2 * k}") for k in range(n_up)), []) + _conv("conv_last")
    return keys


def rcan_keys(num_group, num_block, n_up):
    keys = _conv("conv_first")
    for g in range(num_group):
        for b in range(num_block):
            p = f"body.{g}.residual_group.{b}.rcab"
            keys += _conv(f"{p}.0") + _conv(f"{p}.2") + _conv(f"{p}.3.attention.1") + _conv(f"{p}.3.attention.3")
        keys += _conv(f"body.{g}.conv")
    return keys + _conv("conv_after_body") + sum((_conv(f"upsample.{2 * k}") for k in range(n_up)), []) \
        + _conv("conv_last")


def swinir_keys(depths, n_up):
    keys = _conv("conv_first") + ["patch_embed.norm.weight", "patch_embed.norm.bias"]
    for i, d in enumerate(depths):
        for j in range(d):
            p = f"layers.{i}.residual_group.blocks.{j}"
            keys += [f"{p}.norm1.weight", f"{p}.norm1.bias", f"{p}.attn.relative_position_bias_table",
                     f"{p}.attn.relative_position_index"] + _conv(f"{p}.attn.qkv") + _conv(f"{p}.attn.proj") \
                + [f"{p}.norm2.weight", f"{p}.norm2.bias"] + _conv(f"{p}.mlp.fc1") + _conv(f"{p}.mlp.fc2")
            if j % 2:
                keys.append(f"{p}.attn_mask")
        keys += _conv(f"layers.{i}.conv")
    keys += ["norm.weight", "norm.bias"] + _conv("conv_after_body") + _conv("conv_before_upsample.0")
    return keys + sum((_conv(f"upsample.{2 * k}") for k in range(n_up)), []) + _conv("conv_last")


CASES = {
    "edsr": (dict(num_feat=8, num_block=2, upscale=4), edsr_keys(2, 2)),
    "rcan": (dict(num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=3), rcan_keys(2, 2, 1)),
    "swinir": (dict(upscale=2, img_size=16, window_size=4, depths=[2], embed_dim=12, num_heads=[2]),
               swinir_keys([2], 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_basicsr_checkpoint_loads_strictly_in_both_trees(name, tmp_path):
    kw, expected = CASES[name]
    torch.manual_seed(0)
    src = pt_reference.create_model(name, **kw)
    assert sorted(src.state_dict()) == sorted(expected)
    path = tmp_path / f"{name}.pth"
    torch.save({"params": src.state_dict(), "params_ema": {}}, path)
    pt_net, ms_net = pt_reference.create_model(name, **kw), ms_models.create_model(name, **kw)
    pt_load(pt_net, path)
    ms_load(ms_net, path)
    ref = pt_state(src)
    for k, v in pt_state(pt_net).items():
        np.testing.assert_array_equal(v, ref[k])
    got_ms = ms_state(ms_net)
    assert len(got_ms) == len(expected)
    np.testing.assert_array_equal(got_ms["conv_first.weight"], ref["conv_first.weight"])
    if name == "swinir":
        np.testing.assert_array_equal(got_ms["layers.0.residual_group.blocks.1.attn_mask"],
                                      ref["layers.0.residual_group.blocks.1.attn_mask"])
        np.testing.assert_array_equal(got_ms["patch_embed.norm.gamma"], ref["patch_embed.norm.weight"])
    ckpt = tmp_path / f"{name}.ckpt"
    ms.save_checkpoint(ms_net, str(ckpt))
    back = pt_reference.create_model(name, **kw)
    pt_load(back, ckpt)                                     # a MindSpore checkpoint converts back
    np.testing.assert_array_equal(pt_state(back)["conv_last.weight"], ref["conv_last.weight"])


def test_mismatched_checkpoint_names_every_key(tmp_path):
    src = pt_reference.create_model("edsr", num_feat=8, num_block=2, upscale=2)
    state = src.state_dict()
    state.pop("body.1.conv2.bias")
    state["body.9.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"params": state}, path)
    for net, load in ((pt_reference.create_model("edsr", num_feat=8, num_block=2, upscale=2), pt_load),
                      (ms_models.create_model("edsr", num_feat=8, num_block=2, upscale=2), ms_load)):
        with pytest.raises(WeightMismatchError) as err:
            load(net, path)
        assert "body.1.conv2.bias" in str(err.value) and "body.9.conv1.weight" in str(err.value)


def test_original_rcan_release_converts(tmp_path):
    """Names of the original RCAN code (EDSR-PyTorch style), written out independently."""
    kw = dict(num_feat=16, num_group=2, num_block=3, squeeze_factor=4, upscale=4)
    torch.manual_seed(1)
    ref = pt_state(pt_reference.create_model("rcan", **kw))
    orig = {"sub_mean.weight": np.eye(3), "sub_mean.bias": np.zeros(3), "add_mean.weight": np.eye(3),
            "add_mean.bias": np.zeros(3)}
    for a in ("weight", "bias"):
        orig[f"head.0.{a}"] = ref[f"conv_first.{a}"]
        for g in range(2):
            for b in range(3):
                for i in (0, 2):
                    orig[f"body.{g}.body.{b}.body.{i}.{a}"] = ref[f"body.{g}.residual_group.{b}.rcab.{i}.{a}"]
                for i, j in ((0, 1), (2, 3)):
                    orig[f"body.{g}.body.{b}.body.3.conv_du.{i}.{a}"] = \
                        ref[f"body.{g}.residual_group.{b}.rcab.3.attention.{j}.{a}"]
            orig[f"body.{g}.body.3.{a}"] = ref[f"body.{g}.conv.{a}"]
        orig[f"body.2.{a}"] = ref[f"conv_after_body.{a}"]
        orig[f"tail.0.0.{a}"], orig[f"tail.0.2.{a}"] = ref[f"upsample.0.{a}"], ref[f"upsample.2.{a}"]
        orig[f"tail.1.{a}"] = ref[f"conv_last.{a}"]
    out = rcan_official_to_basicsr(orig)
    assert sorted(out) == sorted(ref) and all(np.array_equal(out[k], ref[k]) for k in ref)
    path = tmp_path / "RCAN_BIX4.pt"
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in orig.items()}, path)
    ms_net = ms_models.create_model("rcan", **kw)
    ms_load(ms_net, path, source="rcan_official")
    np.testing.assert_array_equal(ms_state(ms_net)["body.1.conv.weight"], ref["body.1.conv.weight"])
    with pytest.raises(KeyError, match="tail.7.weight"):
        rcan_official_to_basicsr({**orig, "tail.7.weight": np.zeros(1)})
