"""MATLAB bicubic resize (BasicSR ``imresize``) as a torch module: the separable matrices of
``common.sr_resize.resize_matrix`` applied with two matmuls (the twin of ms_models/dukd/resize.py)."""
import numpy as np
import torch
from torch import nn

from common.sr_resize import resize_matrix


class MatlabResize(nn.Module):
    """(B, C, H, W) float32 -> (B, C, ceil(H*scale), ceil(W*scale)) for a fixed input size."""

    def __init__(self, in_hw, scale, antialiasing=True):
        super().__init__()
        h, w = int(in_hw[0]), int(in_hw[1])
        mh_t = np.ascontiguousarray(resize_matrix(h, scale, antialiasing).T).astype(np.float32)
        mw_t = np.ascontiguousarray(resize_matrix(w, scale, antialiasing).T).astype(np.float32)
        self.register_buffer("mh_t", torch.from_numpy(mh_t), persistent=False)
        self.register_buffer("mw_t", torch.from_numpy(mw_t), persistent=False)

    def forward(self, x):
        y = torch.matmul(x, self.mw_t)
        y = torch.matmul(y.transpose(-1, -2), self.mh_t)
        return y.transpose(-1, -2)
