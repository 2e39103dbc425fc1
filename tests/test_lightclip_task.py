"""LightCLIP task through the MindSpore engine with the compiled (GRAPH mode) train step: every
module moves (the matching step feeds the token loss), the run ends with zero-shot and retrieval
metrics; the EfficientNet-Lite0 ImageNet weights load through the MindSpore task; inference never
touches the training-only modules."""
import numpy as np
import pytest
import torch

from common.config import load_config
from ms_models.engine import Trainer
from ms_models.lightclip.task import build_task
from ms_models.utils.weights import state_numpy
from pt_reference.backbones.efficientnet_lite import load_lite0_state
from pt_reference.lightclip.task import build_task as build_pt_task

TINY = ["model.tiny_width=8", "model.embed_dim=16", "model.text_width=16", "model.text_layers=2",
        "model.text_heads=2", "data.batch_size=8", "data.num_train=32", "data.num_test=16", "data.zs_per_pair=1",
        "train.epochs=1", "train.max_steps=2", "train.log_interval=0"]


def test_graph_mode_training_moves_every_module_and_evaluates(tmp_path):
    cfg = load_config("lightclip", TINY)
    assert cfg.train.graph_mode is True
    task = build_task(cfg)
    assert task.loss_names == ("inst", "tok", "mlm") and hasattr(task, "build_train_step")
    before = {k: v.copy() for k, v in state_numpy(task.model).items()}
    metrics = Trainer(task, cfg, tmp_path / "run").fit()
    after = state_numpy(task.model)
    frozen = sorted(k for k in before if np.array_equal(before[k], after[k]))
    assert not frozen, frozen
    for key in ("zs_acc", "zs_acc_held", "zs_acc_seen", "i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R10"):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert metrics["primary"] == "zs_acc_held"


def test_inference_ignores_training_modules_and_plain_infonce_has_no_matching_step():
    cfg = load_config("lightclip", TINY + ["loss.tok=0", "loss.mlm=0"])
    task = build_pt_task(cfg)
    assert not hasattr(task, "build_train_step") and not hasattr(task.model, "mlm_head")
    full = build_pt_task(load_config("lightclip", TINY))
    state = {k: v for k, v in full.model.state_dict().items() if not k.startswith(("fusion.", "mlm_head."))}
    task.model.load_state_dict(state, strict=True)
    full.model.eval()
    task.model.eval()
    x = torch.from_numpy(task.data.set.test_images[:4])
    t = torch.from_numpy(task.data.test_ids[:4])
    with torch.no_grad():
        assert torch.equal(full.model.encode_image(x), task.model.encode_image(x))
        assert torch.equal(full.model.encode_text(t), task.model.encode_text(t))


def test_efficientnet_lite0_imagenet_weights_load_into_the_mindspore_task():
    cfg = load_config("lightclip", TINY + ["model.image_encoder=efficientnet_lite0", "model.pretrained_image=true"])
    task = build_task(cfg)
    got = state_numpy(task.model)
    src = load_lite0_state()
    np.testing.assert_array_equal(got["visual._blocks.3._depthwise_conv.weight"],
                                  src["_blocks.3._depthwise_conv.weight"].numpy())
    np.testing.assert_array_equal(got["visual._bn1.moving_variance"], src["_bn1.running_var"].numpy())
    with pytest.raises(ValueError, match="pretrained_image"):
        build_task(load_config("lightclip", TINY + ["model.pretrained_image=true"]))
