"""Multi-head self-attention (timm ``Attention``): fused qkv projection, parameter names qkv/proj."""
from mindspore import nn, ops

from .init import dense


class Attention(nn.Cell):
    """(B, N, C) -> (B, N, C) softmax self-attention over N tokens with ``num_heads`` heads."""

    def __init__(self, dim, num_heads=8, qkv_bias=True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = dense(dim, dim * 3, qkv_bias)
        self.proj = dense(dim, dim)

    def qkv_heads(self, x):
        """(B, N, C) -> q, k, v, each (B, heads, N, head_dim)."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attention_probs(self, q, k):
        """Softmax attention weights (B, heads, N, N)."""
        return ops.softmax(ops.matmul(q * self.scale, k.swapaxes(-2, -1)), axis=-1)

    def merge_heads(self, x):
        """(B, heads, N, head_dim) -> (B, N, C) through the output projection."""
        b, _, n, _ = x.shape
        return self.proj(x.transpose(0, 2, 1, 3).reshape(b, n, self.num_heads * self.head_dim))

    def construct(self, x):
        q, k, v = self.qkv_heads(x)
        return self.merge_heads(ops.matmul(self.attention_probs(q, k), v))
