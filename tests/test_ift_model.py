"""IFT network pieces against independent computations (numpy Swin mask and roll), option
validation, channel-order handling, and the registered builders."""
import mindspore as ms
import numpy as np
import pytest

from common.config import ConfigError, load_config
from common.data.hdr_patches import relative_position_index
from ms_models import create_model
from ms_models.ift import IFT
from ms_models.ift.transformer import roll2d, shifted_window_mask

SMALL = dict(embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, patch_size=4, k=2, scf_heads=2,
             drop_path_rate=0.0)


def _official_mask(h, w, ws, shift):
    """Swin's calculate_mask written with slices, in numpy."""
    img = np.zeros((h, w))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[hs, wsl] = cnt
            cnt += 1
    win = img.reshape(h // ws, ws, w // ws, ws).transpose(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0)


def test_shifted_window_mask_and_roll_match_numpy():
    np.testing.assert_array_equal(shifted_window_mask(16, 24, 8, 4).asnumpy(), _official_mask(16, 24, 8, 4))
    x = np.arange(2 * 6 * 5 * 3, dtype=np.float32).reshape(2, 6, 5, 3)
    np.testing.assert_array_equal(roll2d(ms.Tensor(x), -2, 3).asnumpy(), np.roll(x, (-2, 3), (1, 2)))


def test_relative_position_index_centre_and_range():
    idx = relative_position_index(4)
    assert idx.shape == (16, 16) and idx.min() == 0 and idx.max() == 48
    assert (np.diag(idx) == 3 * 7 + 3).all()                       # zero offset is the table centre


def test_forward_range_and_window_only_indices():
    rng = np.random.default_rng(0)
    xs = [ms.Tensor(rng.random((1, 6, 16, 16)).astype(np.float32)) for _ in range(3)]
    net = IFT(**SMALL, fgps_backend="none")
    net.set_train(False)
    out = net(*xs).asnumpy()
    assert out.shape == (1, 3, 16, 16) and (out > 0).all() and (out < 1).all()
    i1, i3 = net.match(*xs)
    np.testing.assert_array_equal(i1.asnumpy()[0, :, 0], np.arange(16))
    assert net.size_multiple == 4


def test_input_order_selects_the_hdr_channels_for_search():
    rng = np.random.default_rng(1)
    xs = [rng.random((1, 6, 16, 16)).astype(np.float32) for _ in range(3)]
    swapped = [np.concatenate([x[:, 3:], x[:, :3]], 1) for x in xs]
    a = IFT(**SMALL, fgps_backend="exact").match(*[ms.Tensor(x) for x in xs])
    b = IFT(**SMALL, fgps_backend="exact", input_order="ldr_first").match(*[ms.Tensor(x) for x in swapped])
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u.asnumpy(), v.asnumpy())


def test_invalid_options_name_the_key():
    with pytest.raises(ValueError, match="fgps_backend"):
        IFT(**SMALL, fgps_backend="faiss")
    with pytest.raises(ValueError, match="search_on"):
        IFT(**SMALL, search_on="pixels")
    with pytest.raises(ValueError, match="depths"):
        IFT(**{**SMALL, "num_heads": (2, 2)})
    with pytest.raises(ConfigError, match="fgps_backend"):
        load_config("configs/ift/demo.yaml", ["model.fgps_backend=faiss"])
    with pytest.raises(ConfigError, match="patch_size"):
        load_config("configs/ift/demo.yaml", ["model.patch_sise=4"])


def test_registered_builders_at_paper_size():
    cfg = load_config("configs/ift/ift_kalantari.yaml")
    assert cfg.model.fgps_backend == "lsh" and cfg.optim.lr == 2e-4 and cfg.train.seed == 443
    net = create_model("ift", embed_dim=60, fgps_backend="lsh")
    names = set(net.parameters_dict())
    assert "fgps.rotations" in names and "scf_1.cross_attn.kv.weight" in names
    assert net.parameters_dict()["fgps.rotations"].shape == (8, 3 * 64 + 2, 8)  # + the 2 level components
    assert len(net.layers) == 3 and all(len(layer.residual_group.blocks) == 6 for layer in net.layers)
    shell = create_model("hdr_transformer")
    assert not any(n.startswith(("fgps", "scf_")) for n in shell.parameters_dict())
    n_ift = sum(p.size for p in net.trainable_params())
    n_shell = sum(p.size for p in shell.trainable_params())
    # two SCF blocks: 4 LayerNorms, qkv+proj, q+kv+proj, MLP (ratio 2), each with biases
    c = 60
    scf = 4 * 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (c * c + c) + (2 * c * c + 2 * c) + (c * c + c) \
        + (2 * c * c + 2 * c) + (2 * c * c + c)
    assert n_ift - n_shell == 2 * scf
