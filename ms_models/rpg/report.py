"""Sparsity and rank report of a pruned network (numpy only; twin of ``pt_reference/rpg/report.py``).

Per prunable layer: shape, exact zero count and sparsity; for conv layers (the ones the rank loss
acts on) the matrix W.reshape(C_out, -1) normalised by its Frobenius norm, its singular values
(float64 numpy SVD), k at the ``partial_k`` residual energy (the official ``ks``), the numerical
rank (sigma > ``tol`` * sigma_1) and the counts of all-zero rows and columns. Written as
``rpg_layers.csv``, ``rpg_report.json`` and ``rpg_report.png`` in the run folder.
"""
import csv
import json
from pathlib import Path

import numpy as np

COLUMNS = ("name", "kind", "shape", "numel", "zeros", "sparsity", "k", "numerical_rank", "full_rank",
           "zero_rows", "zero_cols")


def find_k_np(s2, partial_k):
    """numpy ``find_k``: k in [0, n-1] minimising |tail energy - partial_k|, ties to the larger k."""
    tail = np.cumsum(s2[::-1])
    return len(s2) - int(np.argmin(np.abs(tail - partial_k))) - 1


def layer_row(name, weight, is_linear, partial_k, tol):
    w = np.asarray(weight, dtype=np.float64)
    mat = w.reshape(w.shape[0], -1)
    zeros = int((w == 0).sum())
    row = {"name": name, "kind": "linear" if is_linear else "conv", "shape": list(w.shape), "numel": int(w.size),
           "zeros": zeros, "sparsity": zeros / w.size, "full_rank": int(min(mat.shape)),
           "zero_rows": int((~mat.any(axis=1)).sum()), "zero_cols": int((~mat.any(axis=0)).sum())}
    norm = np.linalg.norm(mat)
    if norm == 0:
        row.update(k=0, numerical_rank=0)
        return row
    s = np.linalg.svd(mat / norm, compute_uv=False)
    row["numerical_rank"] = int((s > tol * s[0]).sum())
    row["k"] = None if is_linear else find_k_np(s * s, partial_k)
    return row


def build_report(named_weights, linear_flags, partial_k=0.2, tol=1e-3):
    """``{'layers': [rows], 'global_sparsity', 'zeros', 'numel', 'conv_sparsity', 'mean_k', 'mean_numerical_rank'}``.

    Args:
        named_weights: ``[(name, ndarray)]`` of the prunable weights in layer order.
        linear_flags: True for fully connected layers (no rank loss, no k).
    """
    rows = [layer_row(n, w, lin, partial_k, tol) for (n, w), lin in zip(named_weights, linear_flags)]
    zeros, numel = sum(r["zeros"] for r in rows), sum(r["numel"] for r in rows)
    convs = [r for r in rows if r["kind"] == "conv"]
    return {"layers": rows, "zeros": zeros, "numel": numel, "global_sparsity": zeros / numel,
            "conv_sparsity": sum(r["zeros"] for r in convs) / max(1, sum(r["numel"] for r in convs)),
            "mean_k": float(np.mean([r["k"] for r in convs])) if convs else 0.0,
            "mean_numerical_rank": float(np.mean([r["numerical_rank"] for r in convs])) if convs else 0.0,
            "mean_rank_ratio": float(np.mean([r["numerical_rank"] / r["full_rank"] for r in convs])) if convs else 0.0,
            "partial_k": partial_k, "rank_tol": tol}


def write_report(report, out_dir, title="RPG"):
    """Write ``rpg_layers.csv``, ``rpg_report.json`` and ``rpg_report.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".rpg_layers.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=COLUMNS)
        wr.writeheader()
        for r in report["layers"]:
            wr.writerow({**r, "shape": "x".join(map(str, r["shape"]))})
    tmp.replace(out / "rpg_layers.csv")
    tmp = out / ".rpg_report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1), encoding="utf-8")
    tmp.replace(out / "rpg_report.json")
    plot_report(report, out / "rpg_report.png", title)


def plot_report(report, path, title="RPG"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["layers"]
    x = np.arange(len(rows))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(8, 0.22 * len(rows)), 7), sharex=True)
    a1.bar(x, [100 * r["sparsity"] for r in rows], color=["tab:orange" if r["kind"] == "linear" else "tab:blue"
                                                          for r in rows])
    a1.set_ylabel("sparsity %")
    a1.set_title(f"{title}: global sparsity {100 * report['global_sparsity']:.3f}% "
                 f"({report['zeros']}/{report['numel']} zeros)")
    a2.plot(x, [r["full_rank"] for r in rows], "k_", markersize=10, label="full rank min(C_out, C_in k k)")
    a2.plot(x, [r["numerical_rank"] for r in rows], "o", label=f"numerical rank (sigma > {report['rank_tol']:g} sigma_1)")
    a2.plot(x, [r["k"] if r["k"] is not None else np.nan for r in rows], "x",
            label=f"k at residual energy {report['partial_k']:g}")
    a2.set_ylabel("rank")
    a2.set_yscale("log")
    a2.legend(fontsize=8)
    a2.set_xticks(x)
    a2.set_xticklabels([r["name"].replace(".weight", "") for r in rows], rotation=90, fontsize=6)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
