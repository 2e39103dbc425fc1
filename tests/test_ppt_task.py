"""PPT configs and task wiring: recipe values, config errors, a compiled training step with token
compression in both frameworks (weights change), and loading a timm-named DeiT checkpoint."""
import glob

import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import nn

from common.config import ConfigError, load_config

DEMO = ["ppt.r=8", "ppt.pp_loc_list=[1,2]", "data.batch_size=8", "model.kwargs={img_size: 32, patch_size: 4, "
        "embed_dim: 64, depth: 3, num_heads: 2}"]


def _batch():
    """8 Gaussian 32 px images and labels (the task's data pipeline is tested with classification)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 3, 32, 32)).astype(np.float32), rng.integers(0, 8, 8).astype(np.int32)


@pytest.mark.parametrize("path", sorted(glob.glob("configs/ppt/*.yaml")))
def test_every_config_loads(path):
    cfg = load_config(path)
    assert cfg.family == "ppt"


def test_recipe_values():
    for size, r in (("tiny", 50), ("small", 50), ("base", 47)):
        off = load_config(f"configs/ppt/deit_{size}_ppt.yaml")
        ft = load_config(f"configs/ppt/deit_{size}_ppt_finetune.yaml")
        assert off.model.name == ft.model.name == f"ppt_deit_{size}_patch16_224"
        assert (off.ppt.r, off.ppt.pp_loc_list, off.ppt.tau, off.ppt.var_ddof) == (r, [3, 6, 9], 7e-5, 1)
        assert (ft.ppt.tau, ft.optim.name, ft.optim.lr, ft.optim.weight_decay) == (6e-5, "adamw", 2e-5, 0.05)
        assert (ft.train.epochs, ft.data.batch_size, ft.schedule.warmup_epochs, ft.schedule.warmup_lr) == \
            (30, 1024, 5.0, 1e-6)
        assert (ft.schedule.min_lr, ft.model.drop_path_rate, ft.aug.mixup_alpha, ft.aug.cutmix_alpha) == \
            (1e-5, 0.1, 0.8, 1.0)
        assert ft.aug.label_smoothing == 0.1 and off.aug.crop_pct == 0.875


@pytest.mark.parametrize("override,needle", [("ppt.tua=1e-4", "ppt.tau"), ("ppt.tau=-1", "ppt.tau"),
                                             ("ppt.var_ddof=2", "ppt.var_ddof"),
                                             ("ppt.policy_impl=loop", "ppt.policy_impl")])
def test_config_errors_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config("ppt", [override])


def test_model_argument_errors():
    import ms_models
    import pt_reference
    with pytest.raises(ValueError, match="pp_loc_list"):
        ms_models.create_model("ppt_deit_tiny_patch16_224", pp_loc_list=[12])
    with pytest.raises(ValueError, match="var_ddof"):
        pt_reference.create_model("ppt_vit_custom", img_size=32, patch_size=4, embed_dim=64, depth=3, num_heads=2,
                                  var_ddof=3, pp_loc_list=[1])


def test_ms_compiled_train_step_changes_weights():
    from ms_models.ppt.task import build_task
    cfg = load_config("ppt", DEMO + ["ppt.tau=1e-3"])
    task = build_task(cfg)
    net = task.model
    net.set_train(True)
    images, targets = _batch()
    params = net.trainable_params()
    opt = nn.SGD(params, learning_rate=0.1)

    def loss_fn(x, y):
        return task.forward_loss(net, x, y)[0]

    grad_fn = ms.value_and_grad(loss_fn, None, params)

    @ms.jit
    def step(x, y):
        loss, grads = grad_fn(x, y)
        opt(grads)
        return loss

    before = {p.name: p.asnumpy().copy() for p in params}
    losses = [float(step(ms.Tensor(images), ms.Tensor(targets)).asnumpy()) for _ in range(2)]
    changed = [n for n, p in zip(before, params) if not np.array_equal(before[n], p.asnumpy())]
    print(f"[ppt] MindSpore GRAPH steps: losses {losses}; {len(changed)}/{len(params)} tensors changed")
    assert np.isfinite(losses).all() and losses[1] < losses[0]
    assert len(changed) == len(params)


def test_pt_train_step_changes_weights():
    from pt_reference.ppt.task import build_task
    cfg = load_config("ppt", DEMO + ["ppt.tau=1e-3"])
    task = build_task(cfg)
    task.model.train()
    images, targets = _batch()
    opt = torch.optim.SGD(task.model.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in task.model.named_parameters()}
    losses = []
    for _ in range(2):
        loss, _ = task.forward_loss(task.model, torch.from_numpy(images), torch.from_numpy(targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    changed = [n for n, p in task.model.named_parameters() if not torch.equal(before[n], p)]
    assert losses[1] < losses[0] and len(changed) == len(before)


def test_pretrained_timm_checkpoint_loads_with_new_head(tmp_path):
    """A timm-named DeiT-T .pth with a 1000-class head into a 10-class PPT model in both trees."""
    import pt_reference
    from ms_models.ppt.task import load_pretrained as ms_load
    from pt_reference.ppt.task import load_pretrained as pt_load
    import ms_models
    src = pt_reference.create_model("deit_tiny_patch16_224", weight_init="skip")
    rng = np.random.default_rng(0)
    state = {k: torch.from_numpy(rng.standard_normal(v.shape).astype(np.float32)) for k, v in src.state_dict().items()}
    torch.save({"model": state}, tmp_path / "deit_tiny.pth")
    net = ms_models.create_model("ppt_deit_tiny_patch16_224", num_classes=10)
    assert ms_load(net, str(tmp_path / "deit_tiny.pth")) == ["head.weight", "head.bias"]
    got = net.parameters_dict()
    np.testing.assert_array_equal(got["blocks.5.attn.qkv.weight"].asnumpy(), state["blocks.5.attn.qkv.weight"].numpy())
    np.testing.assert_array_equal(got["blocks.0.norm1.gamma"].asnumpy(), state["blocks.0.norm1.weight"].numpy())
    assert got["head.weight"].shape == (10, 192)
    pt = pt_reference.create_model("ppt_deit_tiny_patch16_224", num_classes=10, weight_init="skip")
    assert pt_load(pt, str(tmp_path / "deit_tiny.pth")) == ["head.weight", "head.bias"]
    assert torch.equal(pt.state_dict()["pos_embed"], state["pos_embed"])
