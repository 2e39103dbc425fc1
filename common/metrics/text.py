"""Text-classification and generated-text metrics (numpy): accuracy, Matthews correlation (GLUE
CoLA), distinct-n, and teacher-label statistics of a batch of logits."""
import numpy as np


def _check_pair(pred, label):
    pred, label = np.asarray(pred).reshape(-1), np.asarray(label).reshape(-1)
    if pred.shape != label.shape:
        raise ValueError(f"predictions {pred.shape} and labels {label.shape} differ in length")
    if pred.size == 0:
        raise ValueError("no predictions to score")
    return pred, label


def accuracy(pred, label):
    """Fraction of ``pred == label`` (GLUE SST-2), in [0, 1]."""
    pred, label = _check_pair(pred, label)
    return float(np.mean(pred == label))


def matthews_corrcoef(pred, label):
    """Matthews correlation of binary or multi-class predictions (Gorodkin's R_K; GLUE CoLA).

    ``(c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2))`` with ``c`` correct,
    ``s`` samples, ``p_k``/``t_k`` predicted/true counts of class k; 0 when a factor is 0.
    """
    pred, label = _check_pair(pred, label)
    classes = np.union1d(pred, label)
    p = np.array([(pred == k).sum() for k in classes], np.float64)
    t = np.array([(label == k).sum() for k in classes], np.float64)
    s, c = float(pred.size), float((pred == label).sum())
    denom = np.sqrt((s * s - (p * p).sum()) * (s * s - (t * t).sum()))
    return float((c * s - (p * t).sum()) / denom) if denom > 0 else 0.0


def distinct_n(sequences, n):
    """Distinct-n: unique n-grams / all n-grams over ``sequences`` (lists of tokens); 0 if none."""
    grams = [tuple(seq[i:i + n]) for seq in sequences for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def label_statistics(logits):
    """``{'confidence': mean max softmax prob, 'entropy': mean per-sample entropy (nats),
    'batch_label_entropy': entropy of the predicted-label histogram (nats)}`` of logits (N, K)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    ent = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
    hist = np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / len(p)
    nz = hist[hist > 0]
    return {"confidence": float(p.max(axis=1).mean()), "entropy": float(ent.mean()),
            "batch_label_entropy": float(-(nz * np.log(nz)).sum()) + 0.0}
