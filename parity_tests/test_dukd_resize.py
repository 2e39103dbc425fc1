"""MATLAB bicubic resize: the NumPy reference (float64) against the MindSpore and PyTorch Cells
(float32 matmuls of the same matrices), max |diff| < 1e-6 as issue 7 requires."""
import numpy as np
import pytest
import mindspore as ms
import torch

from common.sr_resize import imresize
from ms_models.dukd.resize import MatlabResize as MsResize
from parity_tests.harness import assert_close
from pt_reference.dukd.resize import MatlabResize as PtResize


@pytest.mark.parametrize("scale,size", [(2, (48, 48)), (3, (48, 48)), (4, (48, 40)), (0.5, (12, 10))])
def test_resize_numpy_mindspore_pytorch_within_1e6(scale, size):
    x = np.random.default_rng(0).random((3, 3) + size).astype(np.float32)
    factor = 1.0 / scale
    ref = imresize(x.astype(np.float64), factor, layout="chw")
    out_ms = MsResize(size, factor)(ms.Tensor(x)).asnumpy()
    out_pt = PtResize(size, factor)(torch.from_numpy(x)).numpy()
    assert out_ms.shape == out_pt.shape == ref.shape
    for name, out in (("mindspore", out_ms), ("pytorch", out_pt)):
        diff = float(np.abs(out - ref).max())
        print(f"resize x{factor:.3g} {size} {name} vs numpy: max |diff| {diff:.2e}")
        assert diff < 1e-6
    assert_close(f"resize x{factor:.3g} {size}", out_ms, out_pt, "forward")
    assert float(np.abs(out_ms - out_pt).max()) < 1e-6
