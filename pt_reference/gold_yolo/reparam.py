"""Deploy form (PyTorch twin): RepVGG reparameterisation and Conv+BN folding, in place.

``switch_to_deploy(model)`` turns every RepVGGBlock into one 3×3 ``rbr_reparam`` conv with bias and
folds the BN of every ConvBNAct (yolov6 Conv/SimConv/Conv_C3, gold_yolo Conv, mmcv ConvModule) and
Conv2d_BN into its conv. The eval output is unchanged up to float rounding.
"""
import torch
from torch import nn

from .common import Conv2d_BN, ConvBNAct, RepVGGBlock


def _bn_scale_shift(bn):
    """BN in eval mode as y = x * scale + shift (per channel)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _fold(conv, bn):
    """New conv with bias equal to bn(conv(x)) in eval mode."""
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      groups=conv.groups, bias=True)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    fused.weight.data.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    fused.bias.data.copy_(bias * scale + shift)
    return fused


def _reparam_repvgg(block):
    """Sum the 3×3, padded 1×1 and identity branches into ``block.rbr_reparam``."""
    dense = _fold(block.rbr_dense.conv, block.rbr_dense.bn)
    one = _fold(block.rbr_1x1.conv, block.rbr_1x1.bn)
    kernel = dense.weight + nn.functional.pad(one.weight, [1, 1, 1, 1])
    bias = dense.bias + one.bias
    if block.rbr_identity is not None:
        scale, shift = _bn_scale_shift(block.rbr_identity)
        eye = torch.zeros_like(kernel)
        idx = torch.arange(block.in_channels)
        eye[idx, idx, 1, 1] = scale
        kernel, bias = kernel + eye, bias + shift
    conv = nn.Conv2d(block.in_channels, block.out_channels, 3, block.stride, 1, bias=True)
    conv.weight.data.copy_(kernel)
    conv.bias.data.copy_(bias)
    del block.rbr_dense, block.rbr_1x1, block.rbr_identity
    block.rbr_reparam = conv
    block.deploy = True


@torch.no_grad()
def switch_to_deploy(model):
    """Reparameterise ``model`` in place for inference and return it (call in eval mode)."""
    for m in list(model.modules()):
        if isinstance(m, RepVGGBlock) and not m.deploy:
            _reparam_repvgg(m)
        elif isinstance(m, ConvBNAct) and m.bn is not None:
            m.conv, m.bn = _fold(m.conv, m.bn), None
        elif isinstance(m, Conv2d_BN) and m.bn is not None:
            m.c, m.bn = _fold(m.c, m.bn), None
    return model
