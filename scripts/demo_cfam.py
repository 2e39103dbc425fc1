"""CFAM demo table: train the demo config in several variants on the built-in synthetic persons and
tabulate R@1/5/10, mAP, mINP and mSD (both orderings) for all, fine and coarse captions and the hard
(one-attribute-neighbour) subset.

    python scripts/demo_cfam.py                      # all variants, MindSpore, GRAPH mode
    python scripts/demo_cfam.py --variants full sdm_id --set train.epochs=4

Each variant is one ``scripts/train.py --config cfam`` run (its own process and run folder); the
table goes to docs/benchmarks/cfam_demo.json and docs/cfam_demo.png (written atomically).
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.atomic import atomic_path  # noqa: E402

VARIANTS = {
    "id_only": ("ID only", ["loss.sdm=0", "loss.gran=0", "loss.match=0"]),
    "sdm_id": ("SDM + ID (no decoder, no hard negatives)", ["loss.gran=0", "loss.match=0"]),
    "itc_id": ("ITC + ID", ["loss.sdm=0", "loss.itc=1", "loss.gran=0", "loss.match=0"]),
    "decoder": ("SDM + ID + granularity decoder", ["loss.match=0"]),
    "matching": ("SDM + ID + hard-negative matching", ["loss.gran=0"]),
    "full": ("CFAM: SDM + ID + decoder + hard-negative matching", []),
    "itc_decoder": ("ITC + ID + granularity decoder (ITC alignment)",
                    ["loss.sdm=0", "loss.itc=1", "model.granularity_loss=itc", "loss.match=0"]),
    "itc_matching": ("ITC + ID + hard-negative matching", ["loss.sdm=0", "loss.itc=1", "loss.gran=0"]),
    "itc_full": ("CFAM with ITC: ITC + ID + decoder (ITC alignment) + hard-negative matching",
                 ["loss.sdm=0", "loss.itc=1", "model.granularity_loss=itc"]),
}
SUBSETS = ("", "fine_", "coarse_", "hard_")
KEYS = ("R1", "R5", "R10", "mAP", "mINP", "mSD_ranked", "mSD_released")


def run_variant(name, extra, runs_root, framework):
    run_dir = runs_root / name
    cmd = [sys.executable, "scripts/train.py", "--config", "cfam", "--framework", framework, "--device", "CPU",
           "--run-dir", str(run_dir)] + [a for kv in VARIANTS[name][1] + extra for a in ("--set", kv)]
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"variant {name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"label": VARIANTS[name][0], "overrides": VARIANTS[name][1] + extra, "seconds": round(time.time() - start),
            "metrics": {f"{s}{k}": metrics.get(f"{s}{k}") for s in SUBSETS for k in KEYS}}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(SUBSETS)
    for i, s in enumerate(SUBSETS):
        vals = [results[n]["metrics"][f"{s}R1"] or 0 for n in names]
        ax.bar([j + i * width for j in range(len(names))], vals, width, label=(s.rstrip("_") or "all") + " R@1")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names)
    ax.set_ylabel("R@1 (%)")
    ax.set_title("CFAM demo on synthetic persons (held-out identities)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="extra config override for every variant")
    ap.add_argument("--framework", default="ms", choices=["ms", "pt"])
    ap.add_argument("--runs-root", default="runs/cfam_demo")
    ap.add_argument("--out", default="docs/benchmarks/cfam_demo.json")
    ap.add_argument("--png", default="docs/cfam_demo.png")
    ap.add_argument("--merge", nargs="*", default=[], help="result JSON files of other runs to merge into --out")
    args = ap.parse_args(argv)
    out = REPO / args.out
    if args.merge:
        results = {}
        for path in args.merge:
            results.update(json.loads(Path(path).read_text())["variants"])
        doc = {"framework": args.framework, "config": "configs/cfam/demo.yaml", "variants": results}
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
        plot(results, REPO / args.png)
        return 0
    results = json.loads(out.read_text())["variants"] if out.is_file() else {}
    for name in args.variants:
        print(f"training variant {name} ...", flush=True)
        results[name] = run_variant(name, args.set, REPO / args.runs_root, args.framework)
        print(json.dumps(results[name]["metrics"]), flush=True)
        doc = {"framework": args.framework, "config": "configs/cfam/demo.yaml", "variants": results}
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
    if not args.no_plot:
        plot(results, REPO / args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
