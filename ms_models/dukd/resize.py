"""MATLAB bicubic resize (BasicSR ``imresize``) as a MindSpore Cell: the separable matrices of
``common.sr_resize.resize_matrix`` applied with two matmuls, so it runs inside a compiled step."""
import numpy as np
from mindspore import Tensor, nn, ops

from common.sr_resize import resize_matrix


class MatlabResize(nn.Cell):
    """(B, C, H, W) float32 -> (B, C, ceil(H*scale), ceil(W*scale)) for a fixed input size.

    Args:
        in_hw: (H, W) of the inputs (the matrices depend on it).
        scale: resize factor (1/s for DUKD's zoom-out).
        antialiasing: MATLAB's antialiasing when downscaling (default on).
    """

    def __init__(self, in_hw, scale, antialiasing=True):
        super().__init__()
        h, w = int(in_hw[0]), int(in_hw[1])
        self.mh_t = Tensor(np.ascontiguousarray(resize_matrix(h, scale, antialiasing).T).astype(np.float32))
        self.mw_t = Tensor(np.ascontiguousarray(resize_matrix(w, scale, antialiasing).T).astype(np.float32))

    def construct(self, x):
        y = ops.matmul(x, self.mw_t)                                  # (B, C, H, W')
        y = ops.matmul(ops.transpose(y, (0, 1, 3, 2)), self.mh_t)    # (B, C, W', H')
        return ops.transpose(y, (0, 1, 3, 2))
