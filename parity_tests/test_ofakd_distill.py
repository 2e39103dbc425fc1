"""Five OFA-KD distillation steps, MindSpore vs PyTorch on shared weights and identical numpy batches.

CNN student: ResNet-18 at 64 px (stage maps 16/8/4/2, SepConv branches) distilled from a small ViT
teacher, integer labels, eps 1.5.  ViT student: an 8-block ViT (taps 1, 3, 5, 7; patch 8 at 112 px: 197 tokens, one
PatchMerging per branch, class-token features) distilled from a small ConvNeXt teacher, soft labels
(mixup + smoothing; the OFA target is their argmax), eps [1, 1.2, 1.4, 1.6, 2] per stage + logits,
batch 2 (no BatchNorm anywhere in that pair; the CNN pair uses batch 4).
SGD (momentum 0.9, weight decay 1e-4 on every trained tensor) with the step inside ``ms.jit``-free
PyNative ``value_and_grad``.  Compared: the loss components of every step, the gradient of every
trained tensor at step 1, every final weight (and BN statistic) of student and projectors; the
teacher must not move.  ReLU decisions of MindSpore are replayed in torch (near-ties only).
"""
import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import nn
from mindspore.nn.utils import no_init_parameters
from timm.models.vision_transformer import VisionTransformer as TimmViT

import ms_models
import pt_reference
from common.weights import convert_state_dict
from ms_models.backbones.vit import VisionTransformer as MsViT
from ms_models.ofakd import OFADistiller as MsDistiller
from parity_tests.harness import ClampDecisions, assert_all_close, assert_close, copy_pt_to_ms, ms_state_as_pt
from pt_reference.ofakd import OFADistiller as PtDistiller

K, STEPS, LR = 10, 5, 0.02


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ms_distiller(*args, **kwargs):
    """The MindSpore twin without initialising its parameters (they are copied from PyTorch next)."""
    with no_init_parameters():
        return MsDistiller(*args, **kwargs)


def _cnn_pair():
    vit = dict(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=K)
    pt = PtDistiller(pt_reference.create_model("resnet18", num_classes=K), TimmViT(**vit), K, img_size=64, eps=1.5)
    ms_net = _ms_distiller(ms_models.create_model("resnet18", num_classes=K), MsViT(**vit), K, img_size=64, eps=1.5)
    return pt, ms_net, 64, False, 4  # batch 4: train-mode BN in the student and the SepConv branches


def _vit_pair():
    vit = dict(img_size=112, patch_size=8, embed_dim=32, depth=8, num_heads=2, num_classes=K)
    eps = [1.0, 1.2, 1.4, 1.6, 2.0]
    cnx = dict(num_classes=K, depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))
    pt = PtDistiller(TimmViT(**vit), pt_reference.create_model("convnext_tiny", **cnx), K, img_size=112, eps=eps)
    ms_net = _ms_distiller(MsViT(**vit), ms_models.create_model("convnext_tiny", **cnx), K, img_size=112, eps=eps)
    return pt, ms_net, 112, True, 2  # no BatchNorm in the ViT student, its branches or the ConvNeXt


def _batch(rng, size, soft, batch):
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    if not soft:
        return x, rng.integers(0, K, batch).astype(np.int32)
    a, b = rng.permutation(K)[:batch], rng.permutation(K)[:batch]
    lam = rng.uniform(0.6, 0.9, (batch, 1))
    y = lam * np.eye(K)[a] + (1 - lam) * np.eye(K)[b]
    return x, (0.9 * y + 0.1 / K).astype(np.float32)


@pytest.mark.parametrize("make", [_cnn_pair, _vit_pair], ids=["cnn_student", "vit_student"])
def test_ofakd_five_distillation_steps(make):
    torch.manual_seed(0)
    pt, net, size, soft, batch = make()
    copy_pt_to_ms(pt, net)
    name = make.__name__.strip("_")
    pt.train()
    net.set_train(True)
    assert not pt.teacher.training and not net.teacher.training
    teacher0 = {k: v.detach().numpy().copy() for k, v in pt.teacher.state_dict().items()
                if not k.endswith("num_batches_tracked")}

    trained = [p for p in pt.parameters() if p.requires_grad]
    assert len(trained) == len(net.trainable_params()) and not any(p.requires_grad for p in pt.teacher.parameters())
    pt_opt = torch.optim.SGD(trained, lr=LR, momentum=0.9, weight_decay=1e-4)
    params = net.trainable_params()
    ms_opt = nn.SGD([{"params": params, "weight_decay": 1e-4}], learning_rate=LR, momentum=0.9)
    grad_fn = ms.value_and_grad(lambda x, y: net(x, y), None, ms_opt.parameters, has_aux=True)
    clamps = ClampDecisions(net, pt)
    rng = np.random.default_rng(0)
    pt_curve, ms_curve = [], []
    for step in range(STEPS):
        x, y = _batch(rng, size, soft, batch)
        clamps.begin_ms()
        (ms_loss, ms_parts), grads = grad_fn(ms.Tensor(x), ms.Tensor(y))
        clamps.end_ms()
        clamps.begin_pt(step)
        pt_opt.zero_grad()
        loss, parts = pt(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        clamps.end_pt()
        if step == 0:
            shapes = {k: tuple(p.shape) for k, p in pt.named_parameters() if p.requires_grad}
            ms_grads = convert_state_dict({p.name: g.asnumpy() for p, g in zip(params, grads)}, shapes, "ms2pt")
            pt_grads = {k: p.grad.numpy() for k, p in pt.named_parameters() if p.requires_grad}
            assert_all_close(f"{name}/grad/", ms_grads, pt_grads, "grads")
        pt_opt.step()
        ms_opt(grads)
        pt_curve.append([loss.item()] + [c.item() for c in parts])
        ms_curve.append([float(ms_loss.asnumpy())] + [float(c.asnumpy()) for c in ms_parts])
    clamps.stop()
    print(f"[parity] {name}: {clamps.flips} ReLU decisions replayed (near-ties), losses pt {np.round(pt_curve, 5)}")
    assert clamps.far_flips == 0, f"{clamps.far_flips} ReLU decisions differ away from zero"
    pt_curve, ms_curve = np.array(pt_curve), np.array(ms_curve)
    for i, part in enumerate(("total", "gt", "kd", "ofa")):
        assert_close(f"{name}/loss_curve/{part}", ms_curve[:, i], pt_curve[:, i], "train")
    assert np.all(pt_curve[:, 3] > 0)

    pt_state = {k: v.detach().numpy() for k, v in pt.state_dict().items() if not k.endswith("num_batches_tracked")}
    ms_state = {k: v for k, v in ms_state_as_pt(net, pt).items() if k in pt_state}
    assert_all_close(f"{name}/final/", ms_state, pt_state, "train")
    for k, v in teacher0.items():
        np.testing.assert_array_equal(pt.teacher.state_dict()[k].numpy(), v, err_msg=f"teacher {k} moved (pt)")
        np.testing.assert_array_equal(ms_state[f"teacher.{k}"], v, err_msg=f"teacher {k} moved (ms)")
    moved = max(float(np.abs(pt_state[k] - v).max()) for k, v in
                {k: v for k, v in ms_state.items() if k.startswith("projector.")}.items())
    assert moved > 0
