"""Species196 metrics: top-1/top-5 (``common.metrics.classification``), macro accuracy,
per-supercategory and per-taxonomy-level accuracy, a confusion matrix, a Markdown report table and
a confusion PNG.

Per-level accuracy: a prediction is correct at level l (supercategory, class, order, family,
genus, species) when the predicted class's ancestor at l equals the true class's ancestor. A class
whose taxonomy lacks a level counts its own category id there (so it is only correct when the
class itself is). ``genus`` falls back to the category ``name`` (genus-level in the release) when
the taxonomy CSV is absent. Species accuracy is top-1.
"""
import numpy as np

from .classification import TopKAccuracy, true_class_rank

LEVELS = ("supercategory", "class", "order", "family", "genus", "species")


def class_ancestors(categories, class_ids):
    """``{level: list of names in class-index order}`` for LEVELS (see the module docstring)."""
    out = {lvl: [] for lvl in LEVELS}
    for cid in class_ids:
        c = categories[cid]
        out["supercategory"].append(c.supercategory)
        for lvl in ("class", "order", "family"):
            v = c.taxonomy.get(lvl) if c.taxonomy else None
            out[lvl].append(v if v else f"#{cid}")
        genus = (c.taxonomy.get("genus") if c.taxonomy else None) or c.name
        out["genus"].append(genus)
        out["species"].append(f"#{cid}")
    return out


def confusion_matrix(labels, preds, num_classes):
    """int64 (K, K): rows true class, columns predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(preds, np.int64)), 1)
    return cm


def species196_metrics(logits, labels, categories, class_ids, ks=(1, 5)):
    """All metrics (percent) of ``logits`` (N, K) against class indices ``labels`` (N,).

    Returns a dict: ``top1``, ``top5``, ``macro_acc`` (mean over classes present in ``labels`` of
    their per-class top-1), ``per_class`` {category id: acc}, ``per_supercategory`` {name: top-1 of
    its images}, ``per_level`` {level: acc}, ``confusion`` (K, K) list, ``num_images``.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    acc = TopKAccuracy(ks)
    acc.update(logits, labels)
    out = acc.compute()
    rank = true_class_rank(logits, labels)
    correct = rank == 0
    # argmax with ties broken by the lowest index, consistent with true_class_rank
    preds = np.argmax(logits, axis=1)
    per_class = {}
    for k in np.unique(labels):
        per_class[int(class_ids[k])] = 100.0 * float(correct[labels == k].mean())
    out["macro_acc"] = float(np.mean(list(per_class.values())))
    anc = class_ancestors(categories, class_ids)
    sup = np.array(anc["supercategory"])
    out["per_supercategory"] = {s: 100.0 * float(correct[sup[labels] == s].mean()) for s in sorted(set(sup[labels]))}
    out["per_level"] = {}
    for lvl in LEVELS:
        names = np.array(anc[lvl])
        out["per_level"][lvl] = 100.0 * float((names[preds] == names[labels]).mean())
    out["per_class"] = per_class
    out["confusion"] = confusion_matrix(labels, preds, len(class_ids)).tolist()
    out["num_images"] = int(len(labels))
    return out


def report_markdown(metrics, categories, class_ids, title="Species196 evaluation", extra=None):
    """Markdown tables: headline numbers, per-level, per-supercategory, per-class accuracy."""
    lines = [f"## {title}", ""]
    head = [("images", metrics["num_images"]), ("top-1 %", f"{metrics['top1']:.2f}"),
            ("top-5 %", f"{metrics.get('top5', float('nan')):.2f}"), ("macro %", f"{metrics['macro_acc']:.2f}")]
    for k, v in (extra or {}).items():
        head.append((k, v))
    lines += ["| " + " | ".join(h for h, _ in head) + " |", "|" + "---|" * len(head),
              "| " + " | ".join(str(v) for _, v in head) + " |", ""]
    lines += ["| level | accuracy % |", "|---|---|"]
    lines += [f"| {lvl} | {v:.2f} |" for lvl, v in metrics["per_level"].items()] + [""]
    lines += ["| supercategory | top-1 % |", "|---|---|"]
    lines += [f"| {s} | {v:.2f} |" for s, v in metrics["per_supercategory"].items()] + [""]
    lines += ["| index | category id | name | scientific name | supercategory | top-1 % |", "|---|---|---|---|---|---|"]
    for idx, cid in enumerate(class_ids):
        c = categories[cid]
        acc = metrics["per_class"].get(cid)
        lines.append(f"| {idx} | {cid} | {c.name} | {c.scientific_name or ''} | {c.supercategory} | "
                     f"{'-' if acc is None else f'{acc:.2f}'} |")
    return "\n".join(lines) + "\n"


def plot_confusion(confusion, labels, path, title="confusion (rows: true, columns: predicted)"):
    """Write the row-normalised confusion matrix as a PNG (matplotlib Agg); returns ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.atomic import atomic_path

    cm = np.asarray(confusion, np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(labels)
    size = max(4.0, 0.45 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
