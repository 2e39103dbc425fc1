"""High-GD attention blocks, pyramid pooling and the injection module (MindSpore).

Shapes: every cell maps NCHW float32 maps. ``Attention`` works on the H64 map (10×10 at 640).
"""
import numpy as np
from mindspore import nn, ops

from .common import Conv2d_BN, ConvModule, DropPath, avg_pool_to, h_sigmoid, resize_bilinear


class Attention(nn.Cell):
    """Multi-head attention over the H·W positions of a map, q/k/v from 1×1 Conv2d_BN.

    The official code applies no 1/sqrt(key_dim) scaling (``attn_scale=False``).
    """

    def __init__(self, dim, key_dim, num_heads, attn_ratio, attn_scale=False):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.scale = key_dim ** -0.5 if attn_scale else 1.0
        nh_kd = key_dim * num_heads
        self.to_q = Conv2d_BN(dim, nh_kd)
        self.to_k = Conv2d_BN(dim, nh_kd)
        self.to_v = Conv2d_BN(dim, self.dh)
        self.proj = nn.SequentialCell([nn.ReLU6(), Conv2d_BN(self.dh, dim, bn_weight_init=0.0)])

    def construct(self, x):
        b, _, h, w = x.shape
        q = self.to_q(x).reshape(b, self.num_heads, self.key_dim, h * w).transpose(0, 1, 3, 2)
        k = self.to_k(x).reshape(b, self.num_heads, self.key_dim, h * w)
        v = self.to_v(x).reshape(b, self.num_heads, self.d, h * w).transpose(0, 1, 3, 2)
        attn = ops.matmul(q, k)
        if self.scale != 1.0:
            attn = attn * self.scale
        out = ops.matmul(ops.softmax(attn, -1), v)
        out = out.transpose(0, 1, 3, 2).reshape(b, self.dh, h, w)
        return self.proj(out)


class Mlp(nn.Cell):
    """fc1 (Conv2d_BN) -> 3×3 depthwise conv with bias -> ReLU6 -> fc2 (Conv2d_BN)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = Conv2d_BN(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, pad_mode='pad', padding=1, group=hidden, has_bias=True)
        self.act = nn.ReLU6()
        self.fc2 = Conv2d_BN(hidden, dim)

    def construct(self, x):
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class TopBlock(nn.Cell):
    """x + drop_path(attn(x)), then x + drop_path(mlp(x)); no normalisation layers."""

    def __init__(self, dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path, attn_scale):
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, attn_ratio, attn_scale)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def construct(self, x):
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class TopBasicLayer(nn.Cell):
    """``transformer_blocks``: CellList of ``depth`` TopBlocks, drop path linspace(0, rate, depth)."""

    def __init__(self, depth, dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path_rate, attn_scale):
        super().__init__()
        rates = np.linspace(0, drop_path_rate, depth, dtype=np.float32).tolist()
        self.transformer_blocks = nn.CellList(
            [TopBlock(dim, key_dim, num_heads, mlp_ratio, attn_ratio, r, attn_scale) for r in rates])

    def construct(self, x):
        for blk in self.transformer_blocks:
            x = blk(x)
        return x


class PyramidPoolAgg(nn.Cell):
    """Pool every input to ((H-1)//stride+1, (W-1)//stride+1) of the last input and concat channels."""

    def __init__(self, stride, pool_mode):
        super().__init__()
        self.stride, self.pool_mode = stride, pool_mode

    def construct(self, inputs):
        h, w = inputs[-1].shape[-2:]
        size = ((h - 1) // self.stride + 1, (w - 1) // self.stride + 1)
        out = ()
        for x in inputs:
            out = out + (avg_pool_to(x, size, self.pool_mode),)
        return ops.cat(out, 1)


class InjectionMultiSum_Auto_pool(nn.Cell):
    """Inject global info x_g into local x_l: local_embedding(x_l) * sig + global_embedding(x_g).

    sig = h_sigmoid(global_act(x_g)) resized to x_l. When x_l is smaller than x_g both global maps
    are average-pooled instead, and the official code then skips h_sigmoid
    (``inject_pool_hsigmoid=False``).
    """

    def __init__(self, inp, oup, pool_mode, pool_hsigmoid=False):
        super().__init__()
        self.pool_mode, self.pool_hsigmoid = pool_mode, pool_hsigmoid
        self.local_embedding = ConvModule(inp, oup)
        self.global_embedding = ConvModule(inp, oup)
        self.global_act = ConvModule(inp, oup)

    def construct(self, x_l, x_g):
        size = x_l.shape[-2:]
        local_feat = self.local_embedding(x_l)
        global_act = self.global_act(x_g)
        global_feat = self.global_embedding(x_g)
        if size[0] < x_g.shape[-2]:
            if self.pool_hsigmoid:
                global_act = h_sigmoid(global_act)
            sig_act = avg_pool_to(global_act, size, self.pool_mode)
            global_feat = avg_pool_to(global_feat, size, self.pool_mode)
        else:
            sig_act = resize_bilinear(h_sigmoid(global_act), size)
            global_feat = resize_bilinear(global_feat, size)
        return local_feat * sig_act + global_feat
