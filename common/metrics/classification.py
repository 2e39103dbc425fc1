"""Top-k classification accuracy (numpy).

The rank of the true class is the number of classes scored strictly higher plus the number of
equal scores at a lower class index (ties broken by index, as a stable sort would). A sample is
top-k correct when that rank is below k; k is capped at the number of classes.
"""
import numpy as np


def true_class_rank(logits, labels):
    """int64 (N,) rank (0 = best) of ``labels`` (N,) among the scores ``logits`` (N, C)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels).astype(np.int64)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got range [{labels.min()}, {labels.max()}]")
    true = logits[np.arange(len(labels)), labels][:, None]
    before = np.arange(logits.shape[1])[None, :] < labels[:, None]
    return (logits > true).sum(1) + ((logits == true) & before).sum(1)


def topk_accuracy(logits, labels, ks=(1, 5)):
    """``{'top1': %, 'top5': %}`` (percent, float) of ``logits`` (N, C) against int ``labels`` (N,)."""
    acc = TopKAccuracy(ks)
    acc.update(logits, labels)
    return acc.compute()


class TopKAccuracy:
    """Accumulates top-k hits over batches; ``compute()`` returns percentages keyed ``top<k>``."""

    def __init__(self, ks=(1, 5)):
        self.ks = tuple(int(k) for k in ks)
        self.hits = {k: 0 for k in self.ks}
        self.count = 0

    def update(self, logits, labels):
        rank = true_class_rank(logits, labels)
        for k in self.ks:
            self.hits[k] += int((rank < min(k, np.asarray(logits).shape[1])).sum())
        self.count += len(rank)

    def compute(self):
        if self.count == 0:
            raise ValueError("TopKAccuracy.compute() called before any update()")
        return {f"top{k}": 100.0 * self.hits[k] / self.count for k in self.ks}
