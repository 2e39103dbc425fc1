"""Gold-YOLO model unit tests: shapes, BN census, Params/FLOPs, pooling modes, output contract.

Expected values come from the spec (gold_yolo.md §2, §3.4, §9, §12) and the official config
numbers, never from the code under test.
"""
import os

os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")  # MindSpore 2.10's AVX-512 3x3 conv kernel is ~50x slower

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ms_models  # noqa: E402
import pt_reference  # noqa: E402
from ms_models.gold_yolo import switch_to_deploy  # noqa: E402
from ms_models.gold_yolo.flops import model_info as ms_model_info  # noqa: E402
from ms_models.utils.weights import load_numpy_state, state_numpy  # noqa: E402
from pt_reference.gold_yolo.flops import model_info as pt_model_info  # noqa: E402

ms.set_device('CPU')
ms.runtime.launch_blocking()

# spec §9: official counter (thop at 64x64, x (640/64)^2 x 2, deployed model); N and S with the
# distill_ns head (the README numbers), S also with the plain head.
PARAMS_FLOPS = [
    ('n', 'distill_ns', 5.62, 12.11),
    ('s', 'distill_ns', 21.51, 46.05),
    ('s', 'plain', 21.54, 46.14),
    ('m', 'plain', 41.33, 87.47),
    ('l', 'plain', 75.06, 151.72),
]


def _randomize_preds(net, seed=0):
    """Random prediction convs (zero-initialised otherwise, which would make outputs constant)."""
    rng = np.random.default_rng(seed)
    for name, p in net.parameters_dict().items():
        if '_preds' in name:
            fan_in = p.shape[1] if p.ndim == 4 else 1
            p.set_data(ms.Tensor((rng.standard_normal(p.shape) / np.sqrt(fan_in)).astype(np.float32)))


def _image(size, seed=0):
    return ms.Tensor(np.random.default_rng(seed).uniform(0, 1, (1, 3, size, size)).astype(np.float32))


def test_registry_lists_the_four_variants_in_both_trees():
    expected = ['gold_yolo_l', 'gold_yolo_m', 'gold_yolo_n', 'gold_yolo_s']
    assert ms_models.list_models('gold_yolo_*') == expected
    assert pt_reference.list_models('gold_yolo_*') == expected


def test_n_eval_640_shape_and_deploy_names():
    net = ms_models.create_model('gold_yolo_n')
    net.set_train(False)
    out = net(_image(640)).asnumpy()
    assert out.shape == (1, 8400, 85)
    np.testing.assert_array_equal(out[..., 4], 1.0)
    assert np.isfinite(out).all() and (out[..., 5:] > 0).all() and (out[..., 5:] < 1).all()

    switch_to_deploy(net)
    names = list(net.parameters_dict())
    assert 'backbone.stem.rbr_reparam.weight' in names and 'neck.low_IFM.0.conv.bias' in names
    assert not [n for n in names if '.bn.' in n or 'rbr_dense' in n or 'rbr_identity' in n]


def test_bn_census_n():
    """Spec §3.4: 133 BN at eps 1e-3 / momentum 0.03 and 24 mmcv BN at 1e-5 / 0.1 (MindSpore 0.97 / 0.9)."""
    pt = pt_reference.create_model('gold_yolo_n', head='distill_ns')
    pt_census = {}
    for m in pt.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            key = (m.eps, m.momentum)
            pt_census[key] = pt_census.get(key, 0) + 1
    assert pt_census == {(1e-3, 0.03): 133, (1e-5, 0.1): 24}

    net = ms_models.create_model('gold_yolo_n', head='distill_ns')
    ms_census = {}
    for _, cell in net.cells_and_names():
        if isinstance(cell, ms.nn.BatchNorm2d):
            key = (round(cell.eps, 9), round(1.0 - cell.momentum, 9))  # cell.momentum stores 1 - momentum
            ms_census[key] = ms_census.get(key, 0) + 1
    assert ms_census == {(1e-3, 0.97): 133, (1e-5, 0.9): 24}


@pytest.mark.parametrize('variant,head,params_m,gflops', PARAMS_FLOPS)
def test_params_flops_match_spec(variant, head, params_m, gflops):
    for info in (pt_model_info(pt_reference.create_model(f'gold_yolo_{variant}', head=head)),
                 ms_model_info(ms_models.create_model(f'gold_yolo_{variant}', head=head))):
        print(f'[info] gold_yolo_{variant}/{head}: {info}')
        assert round(info['params_m'], 2) == params_m
        assert round(info['gflops'], 2) == gflops


def test_adaptive_pool_equals_fixed_avgpool_at_640():
    """Spec §3.2 / §12.4: every pooling ratio is integral at 640, so both pool modes agree there."""
    ms.set_seed(0)
    adaptive = ms_models.create_model('gold_yolo_n', pool_mode='torch')
    _randomize_preds(adaptive)
    fixed = ms_models.create_model('gold_yolo_n', pool_mode='fixed_avgpool')
    load_numpy_state(fixed, state_numpy(adaptive))
    adaptive.set_train(False)
    fixed.set_train(False)
    for size, equal in ((640, True), (608, False)):  # 608: 19x19 stride-32 map pooled to 10x10
        ref, got = adaptive(_image(size)).asnumpy(), fixed(_image(size)).asnumpy()
        box_tol = 1e-4 * max(1.0, np.abs(ref[..., :4]).max())
        within = (np.abs(got[..., :4] - ref[..., :4]).max() <= box_tol
                  and np.abs(got[..., 5:] - ref[..., 5:]).max() <= 1e-4)
        assert within == equal, size


def test_train_mode_output_contract():
    """heads.py contract at 128x128: A = 16^2 + 8^2 + 4^2 = 336 anchor points, nc = 80."""
    a, x = 336, _image(128)
    expected = {
        'plain': [(1, a, 80), (1, a, 68)],
        'distill_ns': [(1, a, 80), (1, a, 68), (1, a, 4)],
        'fuse_ab': [(1, 3 * a, 80), (1, 3 * a, 4), (1, a, 80), (1, a, 68)],
    }
    for head, shapes in expected.items():
        net = ms_models.create_model('gold_yolo_n', head=head)
        net.set_train(True)
        out = net(x)
        assert [tuple(f.shape) for f in out[0]] == [(1, 32, 16, 16), (1, 64, 8, 8), (1, 128, 4, 4)]
        assert [tuple(t.shape) for t in out[1:]] == shapes, head
    net = ms_models.create_model('gold_yolo_n', head='plain', use_dfl=False, reg_max=0)
    net.set_train(True)
    assert tuple(net(x)[2].shape) == (1, a, 4)


def test_fuse_ab_anchor_sizes_and_init():
    """anchors_init = official config anchors / stride; Detect.initialize_biases on every pred conv."""
    net = ms_models.create_model('gold_yolo_s', head='fuse_ab')
    anchors = np.array([[10, 13, 19, 19, 33, 23], [30, 61, 59, 59, 59, 119], [116, 90, 185, 185, 373, 326]])
    expected = (anchors / np.array([[8], [16], [32]])).reshape(3, 3, 2)
    np.testing.assert_allclose(net.detect.anchors_init.asnumpy(), expected, rtol=1e-6)
    params = net.parameters_dict()
    for name, p in params.items():
        if '_preds' in name and name.endswith('weight'):
            assert not p.asnumpy().any(), name
        elif 'cls_preds' in name:
            np.testing.assert_allclose(p.asnumpy(), -np.log(99.0), rtol=1e-6)
        elif 'reg_preds' in name:
            np.testing.assert_array_equal(p.asnumpy(), 1.0)
    np.testing.assert_array_equal(params['detect.proj'].asnumpy(), np.arange(17))
    np.testing.assert_array_equal(params['detect.proj_conv.weight'].asnumpy().ravel(), np.arange(17))
    attn_gamma = params['neck.high_IFM.transformer_blocks.0.attn.proj.1.bn.gamma'].asnumpy()
    assert not attn_gamma.any()


@pytest.mark.parametrize('create', [ms_models.create_model, pt_reference.create_model])
@pytest.mark.parametrize('kwargs,message', [
    (dict(head='yolo'), 'head must be one of'),
    (dict(pool_mode='onnx'), 'pool_mode must be one of'),
    (dict(training_mode='repopt'), 'training_mode must be one of'),
    (dict(use_dfl=False), 'use_dfl=False needs reg_max=0'),
    (dict(reg_max=0), 'use_dfl=True needs reg_max >= 1'),
])
def test_invalid_arguments_are_named(create, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create('gold_yolo_n', **kwargs)
