"""LightCLIP demo ablation on the built-in shapes set (MindSpore runs through scripts/train.py):
InfoNCE -> + progressive soft labels -> + token alignment -> + MLM/fusion, each row over several
seeds (a seed changes the images, the held-out colour-shape pairs and the initialisation); mean and
standard deviation per row. Writes ``docs/benchmarks/lightclip_ablation.json`` and
``docs/lightclip_ablation.png``.

    python -m ms_models.lightclip.demo [--seeds 0 1 2] [--framework ms|pt] [--set key=value ...]
"""
import argparse
import json
import os
import subprocess
import sys

from common.atomic import atomic_path

ROWS = (("InfoNCE", ["loss.soft_labels=false", "loss.tok=0", "loss.mlm=0"]),
        ("+ soft labels", ["loss.soft_labels=true", "loss.tok=0", "loss.mlm=0"]),
        ("+ token alignment", ["loss.soft_labels=true", "loss.tok=0.5", "loss.mlm=0"]),
        ("+ MLM/fusion", ["loss.soft_labels=true", "loss.tok=0.5", "loss.mlm=0.5"]))
KEYS = ("zs_acc_held", "zs_acc_seen", "i2t_R1", "t2i_R1")


def run(framework, overrides):
    cmd = [sys.executable, "scripts/train.py", "--config", "lightclip", "--framework", framework, "--set", *overrides]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    run_dir = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("run folder:")][-1]
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        return json.load(f)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(rows))
    for i, k in enumerate(KEYS):
        ax.bar(x + (i - 1.5) * 0.2, [r["mean"][k] for r in rows], 0.2, yerr=[r["std"][k] for r in rows],
               capsize=2, label=k)
    ax.set_xticks(x, [r["row"] for r in rows])
    ax.set_ylabel("percent (mean +- std over seeds)")
    seeds = len(rows[0]["seeds"]) if rows else 0
    ax.set_title(f"LightCLIP demo ablation ({seeds} seeds; held-out colour-shape pairs)", fontsize=9)
    ax.set_ylim(0, 120)
    ax.legend(fontsize=8, ncol=4, loc="upper center")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)


def main(argv=None):
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framework", default="ms", choices=("ms", "pt"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--out", default="docs/benchmarks/lightclip_ablation.json")
    ap.add_argument("--png", default="docs/lightclip_ablation.png")
    args = ap.parse_args(argv)
    rows = []
    for name, ov in ROWS:
        runs = {}
        for seed in args.seeds:
            m = run(args.framework, ov + [f"train.seed={seed}"] + list(args.set))
            runs[str(seed)] = {**{k: m[k] for k in m if k not in ("train", "primary")},
                               "train_time_s": m["train"]["train_time_s"], "final_loss": m["train"]["final_loss"]}
            print(json.dumps({"row": name, "seed": seed, **runs[str(seed)]}), flush=True)
        keys = [k for k in runs[str(args.seeds[0])] if isinstance(runs[str(args.seeds[0])][k], (int, float))]
        rows.append({"row": name, "overrides": ov, "seeds": runs,
                     "mean": {k: float(np.mean([r[k] for r in runs.values()])) for k in keys},
                     "std": {k: float(np.std([r[k] for r in runs.values()], ddof=1)) if len(runs) > 1 else 0.0
                             for k in keys}})
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps({"framework": args.framework, "overrides": args.set, "seeds": args.seeds,
                                       "rows": rows}, indent=1))
    plot(rows, args.png)


if __name__ == "__main__":
    main()
