"""Deploy form (MindSpore): RepVGG reparameterisation and Conv+BN folding, in place.

``switch_to_deploy(model)`` turns every RepVGGBlock into one 3×3 ``rbr_reparam`` conv with bias and
folds the BN of every ConvBNAct (yolov6 Conv/SimConv/Conv_C3, gold_yolo Conv, mmcv ConvModule) and
Conv2d_BN into its conv. Kernels are computed in numpy (float64) and copied with
``Parameter.set_data``; works in PyNative. The eval output is unchanged up to float rounding.
"""
import numpy as np
import mindspore as ms
from mindspore import nn

from .common import Conv2d_BN, ConvBNAct, RepVGGBlock


def _bn_scale_shift(bn):
    """BN in eval mode as y = x * scale + shift (per channel, float64)."""
    var = bn.moving_variance.asnumpy().astype(np.float64)
    scale = bn.gamma.asnumpy().astype(np.float64) / np.sqrt(var + bn.eps)
    return scale, bn.beta.asnumpy().astype(np.float64) - bn.moving_mean.asnumpy().astype(np.float64) * scale


def _folded(conv, bn):
    """(kernel, bias) of bn(conv(x)) in eval mode, float64."""
    scale, shift = _bn_scale_shift(bn)
    kernel = conv.weight.asnumpy().astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    bias = conv.bias.asnumpy().astype(np.float64) if conv.has_bias else np.zeros_like(shift)
    return kernel, bias * scale + shift


def _conv_with(conv, kernel, bias):
    """A conv like ``conv`` (stride, padding, groups) with bias, holding ``kernel`` and ``bias``."""
    out_c, _, kh, _ = kernel.shape
    fused = nn.Conv2d(conv.in_channels, out_c, kh, conv.stride, pad_mode=conv.pad_mode, padding=conv.padding,
                      group=conv.group, has_bias=True)
    fused.weight.set_data(ms.Tensor(kernel.astype(np.float32)))
    fused.bias.set_data(ms.Tensor(bias.astype(np.float32)))
    return fused


def _reparam_repvgg(block):
    """Sum the 3×3, padded 1×1 and identity branches into ``block.rbr_reparam``."""
    kernel, bias = _folded(block.rbr_dense.conv, block.rbr_dense.bn)
    k1, b1 = _folded(block.rbr_1x1.conv, block.rbr_1x1.bn)
    kernel[:, :, 1:2, 1:2] += k1
    bias += b1
    if block.rbr_identity is not None:
        scale, shift = _bn_scale_shift(block.rbr_identity)
        idx = np.arange(block.in_channels)
        kernel[idx, idx, 1, 1] += scale
        bias += shift
    reparam = _conv_with(block.rbr_dense.conv, kernel, bias)
    del block.rbr_dense, block.rbr_1x1
    block.rbr_identity = None
    block.rbr_reparam = reparam
    block.deploy = True


def _rename_parameters(model):
    """Give parameters created after construction their full hierarchical names."""
    for prefix, cell in model.cells_and_names():
        for name, param in cell.parameters_and_names(expand=False):
            param.name = f"{prefix}.{name}" if prefix else name


def switch_to_deploy(model):
    """Reparameterise ``model`` in place for inference and return it (call in eval mode)."""
    for _, cell in list(model.cells_and_names()):
        if isinstance(cell, RepVGGBlock) and not cell.deploy:
            _reparam_repvgg(cell)
        elif isinstance(cell, ConvBNAct) and cell.bn is not None:
            cell.conv = _conv_with(cell.conv, *_folded(cell.conv, cell.bn))
            cell.bn = None
        elif isinstance(cell, Conv2d_BN) and cell.bn is not None:
            cell.c = _conv_with(cell.c, *_folded(cell.c, cell.bn))
            cell.bn = None
    _rename_parameters(model)
    return model
