"""Params/FLOPs with the rule of the official ``get_model_info`` (PyTorch twin).

The official counter runs thop on the deployed model (RepVGG reparameterised, yolov6
Conv/SimConv/Conv_C3 folded by ``fuse_model``) with a 1×3×64×64 input and reports
``2 * thop_total * (img_size / 64)**2``. thop (>= 0.1) counts, for the modules that run:
  - Conv2d: out_numel * (cin / groups) * kh * kw MACs (bias not counted); params weight + bias;
  - BatchNorm2d (affine): 4 * numel ops; params weight + bias (2C).
Functional ops (attention matmuls, softmax, pooling, interpolation, activations) count zero, and
so do parameters held directly by non-leaf modules (``detect.proj``, ``BottleRep.alpha``).
The official fuse leaves the BN of gold_yolo ``Conv`` (low_IFM[0], [4]), mmcv ``ConvModule``
(Inject) and ``Conv2d_BN`` (transformer) in place. Our deploy form folds them too, so for those
modules this counter adds the BN terms back: 4 * out_numel ops and C params (2C BN - C folded bias).
Only modules that run are counted (the distill_ns head skips ``reg_preds`` at eval).
"""
import copy

import torch
from torch import nn

from .common import Conv2d_BN, ConvModule, GoldConv
from .reparam import switch_to_deploy

KEPT_BN = (GoldConv, ConvModule, Conv2d_BN)


def thop_terms(kind, out_numel, weight_shape, groups=1, has_bias=False):
    """(macs, params) of one executed module: kind 'conv' (weight_shape (O, I/g, kh, kw)) or 'kept_bn'."""
    if kind == 'conv':
        o, i_g, kh, kw = weight_shape
        return out_numel * i_g * kh * kw, o * i_g * kh * kw + (o if has_bias else 0)
    if kind == 'kept_bn':
        return 4 * out_numel, weight_shape[0]
    raise ValueError(f"flops: unknown kind {kind!r}")


@torch.no_grad()
def model_info(model, img_size=640, probe_size=64):
    """{'params_m': Params in millions, 'gflops': GFLOPs at img_size} of ``model`` (left unchanged)."""
    net = switch_to_deploy(copy.deepcopy(model).eval())
    macs, params = {}, {}  # per module: ops accumulate over calls, params count once (as thop)
    hooks = []

    def on_conv(mod, inputs, out):
        m, params[mod] = thop_terms('conv', out.numel(), tuple(mod.weight.shape), mod.groups, mod.bias is not None)
        macs[mod] = macs.get(mod, 0) + m

    def on_kept(mod, inputs, out):
        m, params[mod] = thop_terms('kept_bn', out.numel(), (out.shape[1],))
        macs[mod] = macs.get(mod, 0) + m

    for mod in net.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(on_conv))
        elif isinstance(mod, KEPT_BN):
            hooks.append(mod.register_forward_hook(on_kept))
    net(torch.zeros(1, 3, probe_size, probe_size))
    for h in hooks:
        h.remove()
    total = sum(macs.values())
    return {'params_m': sum(params.values()) / 1e6, 'gflops': 2 * total * (img_size / probe_size) ** 2 / 1e9}
