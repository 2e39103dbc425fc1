"""Stochastic depth (timm ``DropPath``): zero a residual branch per sample during training."""
from mindspore import nn, ops


class DropPath(nn.Cell):
    """Keep each sample's branch with probability ``1 - drop_prob``, scaled by ``1 / keep`` in training.

    Input: any shape (B, ...); the mask has shape (B, 1, ..., 1).  Identity in eval mode.
    """

    def __init__(self, drop_prob=0.0, scale_by_keep=True):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"DropPath drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)
        self.scale_by_keep = scale_by_keep

    def construct(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = ops.floor(keep + ops.rand(shape, dtype=x.dtype))
        if self.scale_by_keep:
            mask = mask / keep
        return x * mask

    def extend_repr(self):
        return f"drop_prob={self.drop_prob}"
