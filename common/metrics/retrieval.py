"""Text-to-image retrieval metrics (float64, stable sorts): R@K (CMC), mAP, mINP and UFineBench's mSD.

Protocol (IRRA / UFineBench): every test caption is a query, every test image a gallery item; a
gallery item is relevant when its person id equals the query's. ``similarity`` is (Q, G) cosine
similarity of L2-normalised features. The ranking of each row is by descending similarity with
ties broken by gallery index (a stable sort), so both frameworks rank alike.

With r_k = 1[pid(pi(k)) = pid(q)] in rank order and N_q = sum r_k:

- R@k = 100 * mean_q 1[sum_{i<=k} r_i >= 1]
- AP_q = (1/N_q) sum_k r_k * (sum_{i<=k} r_i) / k;  mAP = 100 * mean AP_q
- INP_q = N_q / k_last (1-based rank of the last positive);  mINP = 100 * mean INP_q
- mSD (UFineBench ``mSD_Calculator.py``): s^ = s/2 + 1/2;
  rho_q = mean of s^ over positives / mean of s^ over negatives; factor (1 - exp(-rho_q));
  P_k = (sum_{i<=k} s^_i r_i) / (sum_{i<=k} s^_i);  SD_q = (1/N_q) sum_k r_k P_k (1 - exp(-rho_q)).
  ``msd_order='ranked'`` (default) uses s^ in rank order (s^_i = s^_{pi(i)}), the reading consistent
  with the ranking; ``'released'`` reproduces the public script, which multiplies the rank-ordered
  relevance r onto the similarity row in its *original gallery order*.
"""
import numpy as np

MSD_ORDERS = ("ranked", "released")


def rank_relevance(similarity, query_pids, gallery_pids):
    """Stable descending ranking: ``(order (Q, G) int64, relevance (Q, G) bool in rank order)``."""
    sim = np.asarray(similarity, np.float64)
    q = np.asarray(query_pids).reshape(-1)
    g = np.asarray(gallery_pids).reshape(-1)
    if sim.ndim != 2 or sim.shape != (q.size, g.size):
        raise ValueError(f"similarity must be (num_queries={q.size}, num_gallery={g.size}), got {sim.shape}")
    order = np.argsort(-sim, axis=1, kind="stable")
    rel = g[order] == q[:, None]
    empty = np.flatnonzero(~rel.any(axis=1))
    if empty.size:
        raise ValueError(f"{empty.size} queries have no relevant gallery item (first: query {int(empty[0])}, "
                         f"pid {q[empty[0]]!r}); every query pid must appear in the gallery")
    return order, rel


def cmc(rel, ks=(1, 5, 10)):
    """``{'R{k}': percent}`` from rank-ordered relevance (Q, G)."""
    hit_rank = np.argmax(rel, axis=1)  # 0-based rank of the first positive
    return {f"R{k}": float(100.0 * np.mean(hit_rank < k)) for k in ks}


def average_precision(rel):
    """AP_q (Q,) float64 over the full ranking."""
    r = rel.astype(np.float64)
    hits = np.cumsum(r, axis=1)
    ranks = np.arange(1, r.shape[1] + 1, dtype=np.float64)
    return (r * hits / ranks).sum(axis=1) / r.sum(axis=1)


def inverse_negative_penalty(rel):
    """INP_q = N_q / (1-based rank of the last positive), (Q,) float64."""
    g = rel.shape[1]
    last = g - np.argmax(rel[:, ::-1], axis=1)
    return rel.sum(axis=1) / last.astype(np.float64)


def similarity_distance(similarity, order, rel, msd_order="ranked"):
    """SD_q (Q,) float64 of UFineBench's mSD (see the module docstring for both orders)."""
    if msd_order not in MSD_ORDERS:
        raise ValueError(f"msd_order must be one of {MSD_ORDERS}, got {msd_order!r}")
    s = np.asarray(similarity, np.float64) / 2.0 + 0.5
    if msd_order == "ranked":
        s = np.take_along_axis(s, order, axis=1)
    r = rel.astype(np.float64)
    n_pos = r.sum(axis=1)
    pos_sum = (s * r).sum(axis=1)
    neg_sum = s.sum(axis=1) - pos_sum
    n_neg = s.shape[1] - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (pos_sum / n_pos) / (neg_sum / n_neg)
    penalty = np.where(n_neg > 0, 1.0 - np.exp(-rho), 1.0)
    precision = np.cumsum(s * r, axis=1) / np.cumsum(s, axis=1)
    return (precision * r).sum(axis=1) / n_pos * penalty


def retrieval_metrics(similarity, query_pids, gallery_pids, ks=(1, 5, 10), msd_order="ranked"):
    """All metrics in percent: ``R1, R5, R10, mAP, mINP, mSD`` (``msd_order``) plus
    ``mSD_ranked`` and ``mSD_released`` (both orderings, always reported)."""
    if msd_order not in MSD_ORDERS:
        raise ValueError(f"msd_order must be one of {MSD_ORDERS}, got {msd_order!r}")
    order, rel = rank_relevance(similarity, query_pids, gallery_pids)
    out = cmc(rel, ks)
    out["mAP"] = float(100.0 * average_precision(rel).mean())
    out["mINP"] = float(100.0 * inverse_negative_penalty(rel).mean())
    for name in MSD_ORDERS:
        out[f"mSD_{name}"] = float(100.0 * similarity_distance(similarity, order, rel, name).mean())
    out["mSD"] = out[f"mSD_{msd_order}"]
    return out


def cosine_similarity(query_feats, gallery_feats):
    """(Q, D), (G, D) -> (Q, G) float64 cosine similarity of L2-normalised rows."""
    q = np.asarray(query_feats, np.float64)
    g = np.asarray(gallery_feats, np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    return q @ g.T
