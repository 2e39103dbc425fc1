"""OFA-KD task, configs and distiller contracts (MindSpore side, plus the PyTorch weight loader).

A tiny demo-data task (small Swin student, small ConvNeXt teacher, 32 px, batch 4) is built from the
demo config; one PyNative SGD step must move student and projector weights but not the teacher's;
``evaluate`` reports the student and every branch;
``predict`` ignores the projectors.  Config and argument errors name what is wrong.
"""
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import nn
from mindspore.nn.utils import no_init_parameters

import ms_models
import pt_reference
from common.config import ConfigError, load_config
from common.weights import write_weights
from ms_models.ofakd import OFADistiller
from ms_models.ofakd import task as ms_task
from ms_models.utils.weights import state_numpy as ms_state
from pt_reference.ofakd import task as pt_task
from pt_reference.utils.weights import state_numpy as pt_state

ms.set_device("CPU")
ms.runtime.launch_blocking()

CONFIGS = sorted(Path("configs/ofakd").glob("*.yaml"))
TINY_SWIN = "{img_size: 32, embed_dim: 16, depths: [2, 2, 2, 2], num_heads: [1, 2, 4, 8], window_size: 4}"


def _tiny_cfg(*extra):
    return load_config("configs/ofakd/demo.yaml", [
        "model.student=swin_tiny_patch4_window7_224", f"model.student_kwargs={TINY_SWIN}",
        "model.teacher=convnext_tiny", "model.teacher_kwargs={depths: [1, 1, 1, 1], dims: [8, 16, 32, 64]}",
        "teacher.allow_random=true", "teacher.pretrain_epochs=0",
        "data.batch_size=4", "data.eval_batch_size=80", "optim.name=sgd", *extra])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_ofakd_configs_load_and_name_registered_models(path):
    cfg = load_config(str(path))
    assert cfg.family == "ofakd"
    for name in (cfg.model.student, cfg.model.teacher):
        assert name in ms_models.list_models() and name in pt_reference.list_models(), name
    assert cfg.distill.mode in ("ofa", "kd", "ce") and len(cfg.distill.eps) in (1, len(cfg.distill.stages) + 1)


def test_ofakd_recipes_follow_the_official_configs():
    cnn, vit = load_config("configs/ofakd/imagenet_cnn.yaml"), load_config("configs/ofakd/imagenet_vit_mlp.yaml")
    assert (cnn.optim.name, cnn.optim.lr, cnn.schedule.name, cnn.schedule.milestones, cnn.train.epochs) == \
        ("sgd", 0.1, "step", [30, 60, 90], 100)
    assert (vit.optim.name, vit.optim.lr, vit.schedule.name, vit.train.epochs, vit.aug.mixup_alpha,
            vit.aug.cutmix_alpha, vit.ema.enabled, vit.train.grad_clip) == ("adamw", 5e-4, "cosine", 300, 0.8, 1.0,
                                                                             True, 5.0)
    c100 = load_config("configs/ofakd/cifar100_vit_mlp.yaml")
    assert (c100.schedule.min_lr, c100.ema.enabled, c100.model.num_classes) == (1e-5, False, 100)
    assert load_config("configs/ofakd/imagenet_deit_t_resnet18.yaml").distill.eps == [1.5]


def test_ofakd_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="distill.mode"):
        load_config("configs/ofakd/demo.yaml", ["distill.mode=fitnet"])
    with pytest.raises(ConfigError, match="distill.log_impl"):
        load_config("configs/ofakd/demo.yaml", ["distill.log_impl=stable"])
    with pytest.raises(ValueError, match="teacher_checkpoint"):
        ms_task.build_task(_tiny_cfg("teacher.allow_random=false"))


def _small_convnext():
    return ms_models.create_model("convnext_tiny", num_classes=4, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))


def test_ofakd_distiller_argument_errors():
    student, teacher = _small_convnext(), _small_convnext()
    with pytest.raises(ValueError, match="ofa_eps needs 1 or len"):
        OFADistiller(student, teacher, 4, img_size=32, eps=[1.0, 1.5])
    with pytest.raises(ValueError, match="ofa_stage"):
        OFADistiller(student, teacher, 4, img_size=32, stages=(0, 5))
    with no_init_parameters():
        vit = ms_models.create_model("deit_tiny_patch16_224", num_classes=4)
    # the official attribute quirk: 0 prefix tokens -> 197 tokens cannot form the merge grid
    with pytest.raises(ValueError, match="square grid"):
        OFADistiller(vit, teacher, 4, stages=(1,), prefix_token_source="num_tokens")
    with pytest.raises(TypeError, match="no stage taps"):
        OFADistiller(nn.Dense(3, 4), teacher, 4)


def test_ofakd_task_step_moves_student_not_teacher_and_evaluates():
    task = ms_task.build_task(_tiny_cfg())
    model = task.model
    groups = task.param_groups(model)
    trained = {p.name for g in groups for p in g["params"]}
    assert trained == {p.name for p in model.trainable_params()}
    assert not any(n.startswith("teacher.") for n in trained) and any(n.startswith("projector.") for n in trained)
    assert {g["name"]: g["weight_decay"] for g in groups}["no_decay"] == 0.0

    before = {k: v.copy() for k, v in ms_state(model).items()}  # asnumpy may share the parameter's memory
    model.set_train(True)
    assert not model.teacher.training and model.student.training
    images, labels = next(task.train_batches(0))
    params = model.trainable_params()
    opt = nn.SGD(params, learning_rate=0.1, momentum=0.0)
    grad_fn = ms.value_and_grad(lambda x, y: task.forward_loss(model, x, y), None, params, has_aux=True)
    (loss, parts), grads = grad_fn(ms.Tensor(images), ms.Tensor(labels))
    opt(grads)
    after = ms_state(model)
    assert np.isfinite(float(loss.asnumpy())) and all(float(p.asnumpy()) > 0 for p in parts)
    for name, value in before.items():
        changed = not np.array_equal(after[name], value)
        if name.startswith("teacher."):
            assert not changed, f"teacher parameter {name} changed"
    assert not np.array_equal(after["student.backbone.head.fc.weight"], before["student.backbone.head.fc.weight"])
    assert not np.array_equal(after["projector.0.3.weight"], before["projector.0.3.weight"])
    assert not np.array_equal(after["projector.3.1.0.attn.qkv.weight"], before["projector.3.1.0.attn.qkv.weight"])

    metrics = task.evaluate(model)
    assert metrics["primary"] == "top1"
    assert set(metrics) >= {"top1", "top5", "branch1_top1", "branch2_top1", "branch3_top1", "branch4_top1"}
    assert all(0.0 <= metrics[k] <= 100.0 for k in metrics if k != "primary")


def test_ofakd_predict_drops_the_projectors():
    student = _small_convnext()
    model = OFADistiller(student, _small_convnext(), 4, img_size=32)
    model.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    ref = student(x).asnumpy()
    for p in model.projector.trainable_params():
        p.set_data(p * 0 + 0.5)
    np.testing.assert_array_equal(model.predict(x).asnumpy(), ref)
    assert not any(n.startswith("projector") for n in ms_state(model.student.backbone))


def test_ofakd_teacher_weights_load_from_either_framework(tmp_path):
    """A timm-named file loads into the MindSpore teacher and a MindSpore-named file into the PyTorch one."""
    torch.manual_seed(0)
    pt = pt_reference.create_model("resnet18", num_classes=4)
    write_weights(str(tmp_path / "timm.npz"), pt_state(pt))
    with no_init_parameters():
        net = ms_models.create_model("resnet18", num_classes=4)
    ms_task.load_weights(net, tmp_path / "timm.npz")
    np.testing.assert_array_equal(ms_state(net)["layer1.0.bn1.moving_mean"], pt_state(pt)["layer1.0.bn1.running_mean"])
    np.testing.assert_array_equal(ms_state(net)["fc.weight"], pt_state(pt)["fc.weight"])
    write_weights(str(tmp_path / "ms.npz"), ms_state(net))
    pt2 = pt_reference.create_model("resnet18", num_classes=4)
    pt_task.load_weights(pt2, tmp_path / "ms.npz")
    np.testing.assert_array_equal(pt_state(pt2)["conv1.weight"], pt_state(pt)["conv1.weight"])
