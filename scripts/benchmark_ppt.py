"""PPT throughput: DeiT with PPT against the unpatched DeiT, in MindSpore and in PyTorch.

    python scripts/benchmark_ppt.py [--models tiny small] [--batch 32] [--threads 2] [--iters 10]
                                    [--warmup 3] [--out docs/benchmarks] [--name ppt_throughput]

Eval mode, fp32, random weights (timm initialisation, the same in both frameworks), Gaussian input.
Each (model, framework) runs in its own interpreter with the same thread count (the workers of
scripts/benchmark.py: ``torch.set_num_threads`` / MindSpore ``op_tuning.threads_num`` and
``OMP_NUM_THREADS``). MindSpore runs the compiled network (GRAPH mode; PPT as the static-shape
masked selection); PyTorch runs eager, PPT as the official index split (``policy_impl='split'``).
PPT: r=50 at blocks [3, 6, 9], tau 7e-5. The median of ``--iters`` timed forwards after
``--warmup`` gives images/s; the baseline and the PPT model run in one worker, timed alternately,
so that load changes on a shared machine hit both. Writes ``<out>/<name>.json`` and ``.png`` with the PPT/baseline ratio
per framework and the MindSpore/PyTorch ratio per model.
"""
import argparse
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.benchmark import run_in_subprocess  # noqa: E402


def measure(spec):
    """Both models of ``spec['models']`` (baseline, PPT) in this process, timed alternately so that a
    change of machine load hits both: ``{model: {'first_s', 'infer_s', 'images_per_s'}}``."""
    import statistics
    import time

    import numpy as np
    x_np = np.random.default_rng(0).standard_normal((spec["batch"], 3, 224, 224)).astype(np.float32)
    if spec["framework"] == "ms":
        import mindspore as ms
        ms.set_device("CPU")
        ms.runtime.launch_blocking()
        ms.device_context.cpu.op_tuning.threads_num(spec["threads"])
        ms.set_context(mode=ms.GRAPH_MODE)
        from ms_models import create_model
        x = ms.Tensor(x_np)

        def runner(name):
            net = create_model(name)
            net.set_train(False)
            return lambda: net(x).asnumpy()
    else:
        import torch
        torch.set_num_threads(spec["threads"])
        from pt_reference import create_model
        x = torch.from_numpy(x_np)

        def runner(name):
            net = create_model(name).eval()

            def infer():
                with torch.inference_mode():
                    net(x)
            return infer
    fns = {name: runner(name) for name in spec["models"]}
    result = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        result[name] = {"first_s": time.perf_counter() - t0}
        for _ in range(max(0, spec["warmup"] - 1)):
            fn()
    times = {name: [] for name in fns}
    for _ in range(spec["iters"]):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    for name in fns:
        med = statistics.median(times[name])
        result[name].update(infer_s=med, images_per_s=spec["batch"] / med, times_s=times[name])
    return result


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(7, 4))
    pos = np.arange(len(rows))
    bars = (("ms", "base", "MindSpore DeiT"), ("ms", "ppt", "MindSpore PPT"),
            ("pt", "base", "PyTorch DeiT"), ("pt", "ppt", "PyTorch PPT"))
    for k, (fw, kind, label) in enumerate(bars):
        vals = [r[fw][kind]["images_per_s"] for r in rows]
        ax.bar(pos + (k - 1.5) * 0.2, vals, 0.2, label=label)
        if kind == "ppt":
            for p, r, v in zip(pos, rows, vals):
                ax.text(p + (k - 1.5) * 0.2, v, f"x{r[fw]['speedup']:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(pos)
    ax.set_xticklabels([f"DeiT-{r['size']}" for r in rows])
    ax.set_ylabel("images / s")
    ax.set_title(f"PPT r=50 [3,6,9], batch {result['batch']}, fp32 eval, {result['threads']} threads", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tiny", "small"], choices=["tiny", "small", "base"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--frameworks", nargs="+", default=["ms", "pt"], choices=["ms", "pt"])
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks"))
    ap.add_argument("--name", default="ppt_throughput")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("BENCH_RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return 0

    from common.runlog import write_json_atomic
    from ms_models.ppt.macs import deit_macs
    rows = []
    for size in args.models:
        row = {"size": size, "gmacs_base": deit_macs(size)["total"] / 1e9,
               "gmacs_ppt": deit_macs(size, r=50)["total"] / 1e9}
        for fw in args.frameworks:
            names = {"base": f"deit_{size}_patch16_224", "ppt": f"ppt_deit_{size}_patch16_224"}
            spec = {"framework": fw, "model": names["ppt"], "models": [names["base"], names["ppt"]],
                    "batch": args.batch, "threads": args.threads, "iters": args.iters, "warmup": args.warmup}
            got = run_in_subprocess(spec, script=__file__)
            row[fw] = {kind: got[name] for kind, name in names.items()}
            for kind, name in names.items():
                print(f"[ppt bench] {fw} {name}: {row[fw][kind]['images_per_s']:.1f} img/s", flush=True)
            row[fw]["speedup"] = row[fw]["ppt"]["images_per_s"] / row[fw]["base"]["images_per_s"]
        if {"ms", "pt"} <= set(args.frameworks):
            row["ms_over_pt"] = {k: row["ms"][k]["images_per_s"] / row["pt"][k]["images_per_s"] for k in ("base", "ppt")}
        rows.append(row)
        print(f"[ppt bench] DeiT-{size}: " + ", ".join(f"{fw} PPT/base x{row[fw]['speedup']:.2f}"
                                                        for fw in args.frameworks), flush=True)
    result = {"batch": args.batch, "threads": args.threads, "iters": args.iters, "warmup": args.warmup,
              "machine": platform.processor() or platform.machine(), "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{args.name}.json", result)
    if {"ms", "pt"} <= set(args.frameworks):
        plot(result, out / f"{args.name}.png")
    print(f"wrote {out / args.name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
