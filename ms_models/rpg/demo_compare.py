"""Demo: the same pruning run with lambda = 0 (global magnitude pruning with RigL) and lambda > 0
(RPG), at the same target sparsity; top-1, exact sparsity and per-layer ranks side by side.

    python -m ms_models.rpg.demo_compare --lambdas 0 1 4 [--config rpg] [--set k=v ...]
    python -m ms_models.rpg.demo_compare --merge a.json b.json   # join separate summaries into one
    python -m ms_models.rpg.demo_compare --from-runs runs/rpg/<run1> runs/rpg/<run2>   # finished run folders

Each run is an ordinary engine run (``runs/rpg/...``); the summary goes to
``docs/benchmarks/rpg_demo.json`` and ``docs/rpg_demo.png``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import ms_models.platform  # noqa: F401  (oneDNN settings before mindspore loads)

REPO = Path(__file__).resolve().parents[2]


def run_one(config, lamb, overrides):
    import mindspore as ms

    from common.config import load_config
    from common.runlog import make_run_dir, run_parent
    from ms_models.engine.trainer import Trainer
    from ms_models.rpg.task import build_task

    cfg = load_config(config, [*overrides, f"rpg.lamb={lamb}"])
    ms.set_seed(int(cfg.train.seed))
    task = build_task(cfg)
    run_dir = make_run_dir(run_parent(cfg, "rpg"), f"demo_lambda{lamb:g}", create=True)
    t0 = time.perf_counter()
    final = Trainer(task, cfg, run_dir).fit()
    rep = task.sparsity_report()
    return {"lambda": lamb, "top1": final["top1"], "top5": final["top5"], "sparsity": rep["global_sparsity"],
            "mask_sparsity": task.pruner.mask_sparsity(), "mean_k": rep["mean_k"],
            "mean_numerical_rank": rep["mean_numerical_rank"], "mean_rank_ratio": rep["mean_rank_ratio"],
            "layers": [{k: r[k] for k in ("name", "sparsity", "k", "numerical_rank", "full_rank")}
                       for r in rep["layers"]],
            "wall_s": round(time.perf_counter() - t0, 1), "run_dir": str(run_dir)}


def summarize_run(run_dir):
    """The summary row of a finished run folder (metrics.json, rpg_report.json, config.yaml, last.ckpt)."""
    import yaml

    from ms_models.engine.checkpoint import load_state

    run_dir = Path(run_dir)
    final = json.loads((run_dir / "metrics.json").read_text())
    rep = json.loads((run_dir / "rpg_report.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    arrays, _ = load_state(run_dir / "last.ckpt")
    masks = [v for k, v in arrays.items() if k.startswith("model.") and k.endswith(".weight_mask")]
    return {"lambda": float(cfg["rpg"]["lamb"]), "top1": final["top1"], "top5": final["top5"],
            "sparsity": rep["global_sparsity"],
            "mask_sparsity": 1.0 - sum(float(m.sum()) for m in masks) / sum(m.size for m in masks),
            "mean_k": rep["mean_k"], "mean_numerical_rank": rep["mean_numerical_rank"],
            "mean_rank_ratio": rep["mean_rank_ratio"],
            "layers": [{k: r[k] for k in ("name", "sparsity", "k", "numerical_rank", "full_rank")} for r in rep["layers"]],
            "wall_s": final["train"]["train_time_s"], "run_dir": str(run_dir)}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [r["name"].replace(".weight", "") for r in results[0]["layers"]]
    x = np.arange(len(names))
    for i, res in enumerate(results):
        off = (i - (len(results) - 1) / 2) * 0.8 / len(results)
        a1.bar(x + off, [100 * r["sparsity"] for r in res["layers"]], 0.8 / len(results), label=f"lambda={res['lambda']:g}")
        a2.plot(x, [r["numerical_rank"] / r["full_rank"] for r in res["layers"]], "o-",
                label=f"lambda={res['lambda']:g} numerical rank: top-1 {res['top1']:.1f}%, "
                      f"sparsity {100 * res['sparsity']:.2f}%")
        a2.plot(x, [r["k"] / r["full_rank"] if r["k"] is not None else np.nan for r in res["layers"]], "x--",
                label=f"lambda={res['lambda']:g} k at residual energy partial_k")
    a1.set_ylabel("layer sparsity %")
    a2.set_ylabel("rank / full rank")
    for a in (a1, a2):
        a.set_xticks(x)
        a.set_xticklabels(names, rotation=90, fontsize=7)
        a.legend(fontsize=8)
    fig.suptitle("RPG demo: same schedule and target sparsity, rank loss off vs on")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="rpg")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--set", dest="overrides", nargs="*", default=[])
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "rpg_demo.json"))
    ap.add_argument("--png", default=str(REPO / "docs" / "rpg_demo.png"))
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="summaries written by earlier runs")
    ap.add_argument("--from-runs", nargs="+", default=None, metavar="DIR", help="finished run folders")
    args = ap.parse_args(argv)
    if args.from_runs:
        results = sorted((summarize_run(d) for d in args.from_runs), key=lambda r: r["lambda"])
        _write(args, {"config": args.config, "overrides": args.overrides, "results": results})
        return 0
    if args.merge:
        docs = [json.loads(Path(p).read_text()) for p in args.merge]
        results = sorted((r for d in docs for r in d["results"]), key=lambda r: r["lambda"])
        _write(args, {"config": docs[0]["config"], "overrides": docs[0]["overrides"], "results": results})
        return 0
    import mindspore as ms
    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    results = [run_one(args.config, lamb, args.overrides) for lamb in args.lambdas]
    _write(args, {"config": args.config, "overrides": args.overrides, "results": results})
    return 0


def _write(args, summary):
    results = summary["results"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out)
    plot(results, args.png)
    for r in results:
        print(f"lambda {r['lambda']:g}: top1 {r['top1']:.2f} top5 {r['top5']:.2f} sparsity {r['sparsity']:.5f} "
              f"(masks {r['mask_sparsity']:.5f}) mean k {r['mean_k']:.2f} mean numerical rank "
              f"{r['mean_numerical_rank']:.2f} rank ratio {r['mean_rank_ratio']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
