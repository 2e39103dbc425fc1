"""Shared test setup: isolate MindSpore's PyNative autodiff caches between tests (see
parity_tests/conftest.py, ``clear_pynative_caches``)."""
import pytest


@pytest.fixture(autouse=True)
def _fresh_pynative_caches():
    yield
    import sys
    if "mindspore" in sys.modules:
        from mindspore.common.api import _pynative_executor
        _pynative_executor.clear_res()
