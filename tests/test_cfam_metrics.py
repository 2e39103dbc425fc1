"""Retrieval metrics (common/metrics/retrieval.py) against hand-worked cases, an independent
per-query loop over the spec's formulas, scikit-learn's average precision and properties."""
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from common.metrics.retrieval import cosine_similarity, retrieval_metrics

# one query (pid 1) over 4 gallery items; ranking by similarity: 0 (pid 2), 2 (pid 1), 3 (pid 3), 1 (pid 1)
SIM = np.array([[0.9, 0.1, 0.5, 0.3]])
QP, GP = np.array([1]), np.array([2, 1, 1, 3])


def test_hand_worked_single_query():
    m = retrieval_metrics(SIM, QP, GP)
    assert m["R1"] == 0.0 and m["R5"] == 100.0 and m["R10"] == 100.0
    assert m["mAP"] == pytest.approx(100 * 0.5 * (1 / 2 + 2 / 4), abs=1e-12)       # 50
    assert m["mINP"] == pytest.approx(100 * 2 / 4, abs=1e-12)                        # last positive at rank 4
    # ranked: s^ in rank order = 0.95, 0.75, 0.65, 0.55; positives at ranks 2 and 4
    rho = ((0.75 + 0.55) / 2) / ((0.95 + 0.65) / 2)
    sd = 0.5 * (0.75 / 1.7 + 1.3 / 2.9) * (1 - math.exp(-rho))
    assert m["mSD_ranked"] == pytest.approx(100 * sd, abs=1e-12)
    assert m["mSD"] == m["mSD_ranked"]
    # released: s^ in gallery order = 0.95, 0.55, 0.75, 0.65 times rank-order relevance 0, 1, 0, 1
    rho_rel = ((0.55 + 0.65) / 2) / ((2.9 - 1.2) / 2)
    sd_rel = 0.5 * (0.55 / 1.5 + 1.2 / 2.9) * (1 - math.exp(-rho_rel))
    assert m["mSD_released"] == pytest.approx(100 * sd_rel, abs=1e-12)
    assert retrieval_metrics(SIM, QP, GP, msd_order="released")["mSD"] == m["mSD_released"]


def test_two_queries_cmc_and_minp():
    sim = np.array([[0.1, 0.8, 0.3], [0.7, 0.2, 0.6]])
    m = retrieval_metrics(sim, [5, 6], [6, 5, 6], ks=(1, 2))
    # q0 (pid 5): ranking 1, 2, 0 -> r = 1, 0, 0; q1 (pid 6): ranking 0, 2, 1 -> r = 1, 1, 0
    assert m["R1"] == 100.0 and m["R2"] == 100.0
    assert m["mAP"] == pytest.approx(100.0)
    assert m["mINP"] == pytest.approx(100.0)
    sim2 = np.array([[0.1, 0.8, 0.3], [0.6, 0.7, 0.2]])       # q1: ranking 1 (5), 0 (6), 2 (6) -> 0, 1, 1
    m2 = retrieval_metrics(sim2, [5, 6], [6, 5, 6], ks=(1, 2))
    assert m2["R1"] == 50.0 and m2["R2"] == 100.0
    assert m2["mAP"] == pytest.approx(100 * (1 + 0.5 * (1 / 2 + 2 / 3)) / 2)
    assert m2["mINP"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def _loop_reference(sim, qp, gp, ranked):
    """Per-query loops over the spec formulas (float64), written independently of the module."""
    out = {"AP": [], "INP": [], "SD": [], "R1": [], "R5": []}
    for i in range(sim.shape[0]):
        order = sorted(range(sim.shape[1]), key=lambda j: (-sim[i, j], j))
        r = [1.0 if gp[j] == qp[i] else 0.0 for j in order]
        shat = [sim[i, j] / 2 + 0.5 for j in (order if ranked else range(sim.shape[1]))]
        n = sum(r)
        hits, ap, last = 0.0, 0.0, 0
        for k, rk in enumerate(r, 1):
            if rk:
                hits += 1
                ap += hits / k
                last = k
        out["AP"].append(ap / n)
        out["INP"].append(n / last)
        out["R1"].append(float(r[0] > 0))
        out["R5"].append(float(sum(r[:5]) > 0))
        pos = sum(s * rk for s, rk in zip(shat, r))
        neg = sum(shat) - pos
        rho = (pos / n) / (neg / (len(r) - n))
        acc_p, acc, sd = 0.0, 0.0, 0.0
        for s, rk in zip(shat, r):
            acc_p += s * rk
            acc += s
            if rk:
                sd += acc_p / acc
        out["SD"].append(sd / n * (1 - math.exp(-rho)))
    return {k: 100 * float(np.mean(v)) for k, v in out.items()}


def test_random_features_match_loop_reference_and_sklearn():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((10, 768))
    g = rng.standard_normal((30, 768))
    qp = np.array([1, 1, 3, 7, 5, 6, 6, 8, 8, 10])
    gp = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10] + list(range(11, 21)))
    sim = cosine_similarity(q, g)
    m = retrieval_metrics(sim, qp, gp)
    for ranked, key in ((True, "mSD_ranked"), (False, "mSD_released")):
        ref = _loop_reference(sim, qp, gp, ranked)
        assert m[key] == pytest.approx(ref["SD"], abs=1e-9)
    assert m["mAP"] == pytest.approx(ref["AP"], abs=1e-9)
    assert m["mINP"] == pytest.approx(ref["INP"], abs=1e-9)
    assert m["R1"] == pytest.approx(ref["R1"]) and m["R5"] == pytest.approx(ref["R5"])
    sk = np.mean([average_precision_score(gp == p, s) for p, s in zip(qp, sim)]) * 100
    assert m["mAP"] == pytest.approx(sk, abs=1e-9)
    assert m["mSD_ranked"] != pytest.approx(m["mSD_released"], abs=1e-6)   # the two orderings differ here


def test_perfect_retrieval_gives_100_and_sorted_gallery_makes_orders_agree():
    rng = np.random.default_rng(1)
    gp = np.repeat(np.arange(6), 3)
    feats = np.eye(6)[gp] + 0.01 * rng.standard_normal((18, 6))
    qp = np.arange(6).repeat(2)
    sim = cosine_similarity(np.eye(6)[qp], feats)
    m = retrieval_metrics(sim, qp, gp)
    for k in ("R1", "R5", "R10", "mAP", "mINP"):
        assert m[k] == pytest.approx(100.0), k
    assert 0 < m["mSD"] < 100
    # when every row is already sorted in gallery order both mSD orderings coincide
    srt = -np.sort(-sim, axis=1)
    order = np.argsort(-sim, axis=1, kind="stable")
    gp_rows = gp[order]
    rows = [retrieval_metrics(srt[i:i + 1], qp[i:i + 1], gp_rows[i]) for i in range(len(qp))]
    assert all(r["mSD_ranked"] == pytest.approx(r["mSD_released"], abs=1e-12) for r in rows)


def test_ties_are_broken_by_gallery_index():
    m = retrieval_metrics(np.zeros((1, 3)), [1], [2, 1, 1])
    assert m["R1"] == 0.0 and m["mAP"] == pytest.approx(100 * 0.5 * (1 / 2 + 2 / 3))
    m = retrieval_metrics(np.zeros((1, 3)), [2], [2, 1, 1])
    assert m["R1"] == 100.0 and m["mINP"] == 100.0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no relevant gallery item.*query 0"):
        retrieval_metrics(SIM, [9], GP)
    with pytest.raises(ValueError, match="msd_order"):
        retrieval_metrics(SIM, QP, GP, msd_order="sorted")
    with pytest.raises(ValueError, match="similarity must be"):
        retrieval_metrics(SIM.T, QP, GP)
