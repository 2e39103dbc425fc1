"""Parity test setup: MindSpore on CPU, synchronous PyNative, fixed seeds before every test."""
import os

# MindSpore 2.10's bundled oneDNN picks a 3x3-convolution kernel on AVX-512 that is ~100x slower
# than the AVX2 one on the reference machine (AMD EPYC: 2 s vs 0.02 s for 64->64 ch at 56x56).
# oneDNN reads this variable lazily, at its first primitive; numerics are unaffected.
os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ms.set_device("CPU")
ms.runtime.launch_blocking()
ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture(autouse=True)
def fixed_seeds():
    """Seed numpy, torch and MindSpore identically before each test."""
    np.random.seed(0)
    torch.manual_seed(0)
    ms.set_seed(0)
    yield
    clear_pynative_caches()


def clear_pynative_caches():
    """Drop MindSpore's PyNative autodiff caches between tests. Measured with MindSpore 2.10: after a
    PyNative ``value_and_grad`` through one Swin configuration, the gradients of another Swin
    configuration in the same process come back silently wrong (relative_position_bias_table 8x
    off); ``clear_res`` restores them. See docs/dev/CONTRACTS.md, "PyNative gradient caches"."""
    from mindspore.common.api import _pynative_executor
    _pynative_executor.clear_res()
