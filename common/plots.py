"""Loss-curve PNG of a run (matplotlib, Agg backend, no display needed)."""
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from common.runlog import read_jsonl  # noqa: E402


def plot_loss_curves(metrics_jsonl, out_png, loss_names=(), title=None):
    """Plot the total loss and each component against the step from ``metrics.jsonl`` records.

    Records with a ``loss`` key are training steps; ``loss_names`` picks the component keys (one
    panel each, after the total). Returns the written path, or None when there is nothing to plot.
    """
    steps = [r for r in read_jsonl(metrics_jsonl) if "loss" in r and "step" in r]
    if not steps:
        return None
    keys = ["loss"] + [k for k in loss_names if k != "loss" and any(k in r for r in steps)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys) + 0.6), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        xs = [r["step"] for r in steps if isinstance(r.get(key), (int, float))]
        ys = [r[key] for r in steps if isinstance(r.get(key), (int, float))]
        ax.plot(xs, ys, lw=1.0, color="tab:blue" if key == "loss" else "tab:orange")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    out_png = Path(out_png)
    tmp = out_png.with_name(f".{out_png.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png
