"""Basic layers of Gold-YOLO (MindSpore; PyTorch twin ``pt_reference.gold_yolo.common``).

Cell attribute names follow the official code (huawei-noah/Efficient-Computing, Detection/Gold-YOLO)
so parameter names equal the official state_dict keys after the BN renames (weight/bias/
running_mean/running_var -> gamma/beta/moving_mean/moving_variance). All tensors are NCHW float32.

BatchNorm settings are per module, as in the official model: eps=1e-3 / torch momentum 0.03
(MindSpore momentum 0.97) for the yolov6 layers (kind 'yolo'), eps=1e-5 / torch momentum 0.1
(MindSpore 0.9) for the mmcv-built Inject and transformer norms (kind 'mm').
"""
import math

import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Constant, HeNormal

BN_KINDS = {'yolo': dict(eps=1e-3, momentum=0.97), 'mm': dict(eps=1e-5, momentum=0.9)}
TRAINING_MODES = ('repvgg', 'conv_silu', 'conv_relu')
POOL_MODES = ('torch', 'fixed_avgpool')


def batch_norm(channels, kind='yolo', gamma_init='ones'):
    """``nn.BatchNorm2d`` with the eps/momentum of ``kind`` ('yolo' or 'mm')."""
    return nn.BatchNorm2d(channels, gamma_init=gamma_init, beta_init='zeros', **BN_KINDS[kind])


def conv2d(cin, cout, k, stride=1, bias=False, weight_init=None):
    """Conv k×k with torch-style zero padding k//2 (default init: MindSpore's torch-like HeUniform)."""
    return nn.Conv2d(cin, cout, k, stride, pad_mode='pad', padding=k // 2, has_bias=bias, weight_init=weight_init)


def make_act(name):
    """Activation cell by name: 'relu', 'relu6', 'silu' or None (identity)."""
    acts = {'relu': nn.ReLU, 'relu6': nn.ReLU6, 'silu': nn.SiLU, None: nn.Identity}
    return acts[name]()


def avg_pool_to(x, size, pool_mode):
    """Average-pool ``x`` (B,C,H,W) to ``size`` (h, w).

    'torch' is adaptive average pooling; 'fixed_avgpool' is the official ONNX-export pooling:
    stride = floor(in/out), kernel = in - (out-1)*stride (equal to 'torch' for integer ratios).
    """
    if pool_mode == 'torch':
        return ops.adaptive_avg_pool2d(x, (size[0], size[1]))
    stride = (x.shape[2] // size[0], x.shape[3] // size[1])
    kernel = (x.shape[2] - (size[0] - 1) * stride[0], x.shape[3] - (size[1] - 1) * stride[1])
    # the AvgPool primitive (not ops.avg_pool2d, which runs AvgPool3D) has an ONNX converter
    return ops.AvgPool(kernel_size=kernel, strides=stride, pad_mode='valid')(x)


def linear_resize_matrix(n_in, n_out):
    """(n_in, n_out) float32 weights of 1-D linear resizing with half-pixel centres (torch
    ``align_corners=False``, no antialias): source coordinate max(0, (o + 0.5) * n_in / n_out - 0.5)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_in, n_out), np.float64)
    np.add.at(m, (i0, np.arange(n_out)), 1.0 - frac)
    np.add.at(m, (i1, np.arange(n_out)), frac)
    return m.astype(np.float32)


def resize_bilinear(x, size):
    """Bilinear resize of ``x`` (B, C, H, W) to ``size`` (h, w), align_corners=False (torch semantics).

    Two matmuls with constant interpolation matrices built from the static H, W: unlike
    ``ops.interpolate`` (ResizeBilinearV2 has no ONNX converter, and its Python-level shape checks
    become control flow that a dynamic-batch MINDIR cannot run) this exports to ONNX and to a
    dynamic-batch MINDIR, and under GRAPH mode the matrices fold to constants.
    """
    mw = ms.Tensor(linear_resize_matrix(x.shape[3], size[1]))
    mh = ms.Tensor(linear_resize_matrix(x.shape[2], size[0]))
    y = ops.matmul(x, mw)
    return ops.matmul(y.swapaxes(2, 3), mh).swapaxes(2, 3)


def max_pool5(x):
    """5×5 max-pool, stride 1, padding 2 (padded cells never win: 'same' pads with -inf like torch).

    The MaxPool primitive has an ONNX converter; ``ops.max_pool2d`` runs MaxPoolWithArgmaxV2, which has none.
    """
    return ops.MaxPool(kernel_size=5, strides=1, pad_mode='same')(x)


class ConvBNAct(nn.Cell):
    """Conv k×k (padding k//2) + BN + activation; cells ``conv``, ``bn``.

    yolov6 ``Conv`` (SiLU), ``SimConv`` (ReLU) and ``Conv_C3``; after reparam.py folds the BN,
    ``bn`` is None.
    """

    def __init__(self, cin, cout, k=1, stride=1, act='relu', bias=False, bn='yolo', weight_init=None):
        super().__init__()
        self.conv = conv2d(cin, cout, k, stride, bias=bias, weight_init=weight_init)
        self.bn = batch_norm(cout, bn)
        self.act = make_act(act)

    def construct(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class GoldConv(ConvBNAct):
    """``gold_yolo.layers.Conv`` (1×1 conv + BN + SiLU in ``low_IFM``); the official ``fuse_model``
    does not fold it, which matters only for the Params/FLOPs rule (flops.py)."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 1, act='silu')


class ConvModule(ConvBNAct):
    """mmcv ``ConvModule`` 1×1, conv without bias + BN (eps 1e-5, torch momentum 0.1), no activation.

    Init as mmcv: conv kaiming-normal (fan_out, relu), BN gamma 1 and beta 0.
    """

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 1, act=None, bn='mm', weight_init=HeNormal(mode='fan_out', nonlinearity='relu'))


class Conv2d_BN(nn.Cell):
    """Conv (no bias) + mmcv BN with cells ``c`` and ``bn``; BN gamma = ``bn_weight_init``."""

    def __init__(self, cin, cout, k=1, bn_weight_init=1.0):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, k, 1, pad_mode='valid', has_bias=False)
        self.bn = batch_norm(cout, 'mm', gamma_init=Constant(bn_weight_init))

    def construct(self, x):
        x = self.c(x)
        if self.bn is not None:
            x = self.bn(x)
        return x


class ConvBN(nn.Cell):
    """RepVGG branch: conv (no bias) + BN with cells ``conv`` and ``bn``."""

    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = conv2d(cin, cout, k, stride)
        self.bn = batch_norm(cout)

    def construct(self, x):
        return self.bn(self.conv(x))


class RepVGGBlock(nn.Cell):
    """RepVGG block: ReLU(3×3 conv-BN + 1×1 conv-BN + identity BN); deploy form ``rbr_reparam``."""

    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        if k != 3:
            raise ValueError(f"RepVGGBlock: kernel_size must be 3, got {k}")
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        self.deploy = False
        self.nonlinearity = nn.ReLU()
        self.rbr_identity = batch_norm(cin) if cin == cout and stride == 1 else None
        self.rbr_dense = ConvBN(cin, cout, 3, stride)
        self.rbr_1x1 = ConvBN(cin, cout, 1, stride)

    def construct(self, x):
        if self.deploy:
            return self.nonlinearity(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)


class ConvWrapper(nn.Cell):
    """Plain conv block (``conv_silu`` / ``conv_relu``): 3×3 conv with bias + BN + act under ``block``."""

    def __init__(self, cin, cout, k=3, stride=1, act='silu'):
        super().__init__()
        self.block = ConvBNAct(cin, cout, k, stride, act=act, bias=True)

    def construct(self, x):
        return self.block(x)


def get_block(training_mode):
    """Block factory ``f(cin, cout, k=3, stride=1)`` for ``training_mode``."""
    if training_mode == 'repvgg':
        return RepVGGBlock
    if training_mode in ('conv_silu', 'conv_relu'):
        act = 'silu' if training_mode == 'conv_silu' else 'relu'

        def conv_block(cin, cout, k=3, stride=1):
            return ConvWrapper(cin, cout, k, stride, act=act)
        return conv_block
    raise ValueError(f"training_mode must be one of {TRAINING_MODES}, got {training_mode!r}")


def csp_act(training_mode):
    """Activation of BepC3 cv1/cv2/cv3 and of the SPPF layers: SiLU only for ``conv_silu``."""
    return 'silu' if training_mode == 'conv_silu' else 'relu'


class RepBlock(nn.Cell):
    """``conv1`` then ``block`` (SequentialCell of n-1 blocks, None when n == 1)."""

    def __init__(self, cin, cout, n, block):
        super().__init__()
        self.conv1 = block(cin, cout)
        self.block = nn.SequentialCell([block(cout, cout) for _ in range(n - 1)]) if n > 1 else None

    def construct(self, x):
        x = self.conv1(x)
        if self.block is not None:
            x = self.block(x)
        return x


class BottleRep(nn.Cell):
    """Two blocks with a residual scaled by the learnable scalar ``alpha`` (shortcut iff cin == cout)."""

    def __init__(self, cin, cout, block):
        super().__init__()
        self.conv1 = block(cin, cout)
        self.conv2 = block(cout, cout)
        self.shortcut = cin == cout
        self.alpha = ms.Parameter(ms.Tensor(np.ones(1, np.float32)), name='alpha')

    def construct(self, x):
        out = self.conv2(self.conv1(x))
        if self.shortcut:
            out = out + self.alpha * x
        return out


class BottleRepBlock(nn.Cell):
    """RepBlock of BottleRep units (``conv1`` + ``block`` of n//2 - 1 units, None when n//2 <= 1)."""

    def __init__(self, cin, cout, n, block):
        super().__init__()
        n = n // 2
        self.conv1 = BottleRep(cin, cout, block)
        self.block = nn.SequentialCell([BottleRep(cout, cout, block) for _ in range(n - 1)]) if n > 1 else None

    def construct(self, x):
        x = self.conv1(x)
        if self.block is not None:
            x = self.block(x)
        return x


class BepC3(nn.Cell):
    """CSP block: cv3(cat(m(cv1(x)), cv2(x))), hidden width c_ = int(cout * e)."""

    def __init__(self, cin, cout, n, e, block, act):
        super().__init__()
        c_ = int(cout * e)
        self.cv1 = ConvBNAct(cin, c_, 1, act=act)
        self.cv2 = ConvBNAct(cin, c_, 1, act=act)
        self.cv3 = ConvBNAct(2 * c_, cout, 1, act=act)
        self.m = BottleRepBlock(c_, c_, n, block)

    def construct(self, x):
        return self.cv3(ops.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Cell):
    """SimSPPF (ReLU) / SPPF (SiLU): cv1 1×1 to cin//2, three 5×5 max-pools, cv2 1×1 on the concat."""

    def __init__(self, cin, cout, act='relu'):
        super().__init__()
        c_ = cin // 2
        self.cv1 = ConvBNAct(cin, c_, 1, act=act)
        self.cv2 = ConvBNAct(c_ * 4, cout, 1, act=act)

    def construct(self, x):
        x = self.cv1(x)
        y1 = max_pool5(x)
        y2 = max_pool5(y1)
        return self.cv2(ops.cat((x, y1, y2, max_pool5(y2)), 1))


class CSPSPPF(nn.Cell):
    """SimCSPSPPF (ReLU) / CSPSPPF (SiLU) with convs cv1..cv7, hidden width int(cout * 0.5)."""

    def __init__(self, cin, cout, act='relu'):
        super().__init__()
        c_ = int(cout * 0.5)
        self.cv1 = ConvBNAct(cin, c_, 1, act=act)
        self.cv2 = ConvBNAct(cin, c_, 1, act=act)
        self.cv3 = ConvBNAct(c_, c_, 3, act=act)
        self.cv4 = ConvBNAct(c_, c_, 1, act=act)
        self.cv5 = ConvBNAct(4 * c_, c_, 1, act=act)
        self.cv6 = ConvBNAct(c_, c_, 3, act=act)
        self.cv7 = ConvBNAct(2 * c_, cout, 1, act=act)

    def construct(self, x):
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y0 = self.cv2(x)
        y1 = max_pool5(x1)
        y2 = max_pool5(y1)
        y3 = self.cv6(self.cv5(ops.cat((x1, y1, y2, max_pool5(y2)), 1)))
        return self.cv7(ops.cat((y0, y3), 1))


class DropPath(nn.Cell):
    """Stochastic depth per sample (train mode only)."""

    def __init__(self, drop_prob):
        super().__init__()
        self.drop_prob = drop_prob

    def construct(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = ops.floor(keep + ops.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype))
        return x / keep * mask


def h_sigmoid(x):
    """ReLU6(x + 3) / 6."""
    return ops.relu6(x + 3.0) / 6.0


def prior_bias(prior_prob=0.01):
    """Class-logit bias for a prior probability: -log((1 - p) / p)."""
    return -math.log((1 - prior_prob) / prior_prob)
