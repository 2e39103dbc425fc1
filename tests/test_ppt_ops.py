"""PPT token ordering: ``descending_order`` (MindSpore's CPU sort) is a stable descending sort - ties
keep the lower token index first, as numpy's stable argsort and the PyTorch twin's stable sort do -
and equals the comparison-counting reference it replaced; both in PyNative and compiled."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor, nn

from ms_models.ppt.token_ops import descending_order, descending_rank, order_indices


class _Order(nn.Cell):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def construct(self, x):
        return descending_order(x, self.k)


def _tie_heavy(rng, b, n):
    x = rng.integers(0, 12, (b, n)).astype(np.float32) / 7.0     # ~n/12 copies of every value
    x[:, 0] = 2.0                                                  # protected prefix token
    x[1, 5:9] = -np.inf                                            # protected ToMe rows
    return x


@pytest.mark.parametrize("n,k", [(197, 147), (99, 50), (8, 8)])
def test_descending_order_is_a_stable_descending_sort(n, k):
    rng = np.random.default_rng(n)
    x = _tie_heavy(rng, 4, n)
    want = np.argsort(-x, axis=1, kind="stable")[:, :k]
    got = descending_order(Tensor(x), k).asnumpy()
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    compiled = ms.jit(_Order(k).construct)(Tensor(x)).asnumpy()
    np.testing.assert_array_equal(compiled, want)
    np.testing.assert_array_equal(order_indices(descending_rank(Tensor(x)), k).asnumpy(), want)


def test_ascending_sort_of_merge_flags_keeps_token_order():
    """bipartite_match takes the unmerged tokens as the first entries of a stable ascending sort of
    the 0/1 merge flags: they must come out in token order."""
    from mindspore import ops
    rng = np.random.default_rng(3)
    flags = np.zeros((6, 99), np.float32)
    for row in flags:
        row[rng.choice(99, 50, replace=False)] = 1.0
    got = ops.sort(Tensor(flags), axis=1)[1].asnumpy()[:, :49]
    np.testing.assert_array_equal(got, np.argsort(flags, axis=1, kind="stable")[:, :49])
    assert all((np.diff(r) > 0).all() for r in got)
