"""OFA-KD demo on the built-in photo set: teacher, then the student with CE only, vanilla KD, OFA eps=1,
OFA eps=1.5 (and OFA on the logits only), each run through ``scripts/train.py``.

    python -m ms_models.ofakd.demo [--framework ms|pt] [--seeds 0 1 2] [--out docs] [--work runs/ofakd_demo]
    python -m ms_models.ofakd.demo --bench [--steps 12]     # distillation step time, MindSpore vs PyTorch

The first run pre-trains the teacher (``teacher.pretrain_epochs`` of configs/ofakd/demo.yaml) and
caches it; every run then distils from that same file.  Writes ``docs/benchmarks/ofakd_demo.json``
(per run and seed: student top-1/top-5, each branch's top-1, train time, steady images/s) and
``docs/ofakd_demo.png``.  This module only orchestrates subprocesses; it imports neither framework.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = "configs/ofakd/demo.yaml"
RUNS = {
    "ce": ["distill.mode=ce"],
    "kd": ["distill.mode=kd"],
    "ofa_eps1.0": ["distill.mode=ofa", "distill.eps=[1.0]"],
    "ofa_eps1.5": ["distill.mode=ofa", "distill.eps=[1.5]"],
    "ofa_logits_only_eps1.5": ["distill.mode=ofa", "distill.eps=[1.5]", "distill.stages=[]"],
}


def _train(framework, run_dir, overrides):
    cmd = [sys.executable, str(REPO / "scripts/train.py"), "--config", CONFIG, "--framework", framework,
           "--device", "CPU", "--run-dir", str(run_dir), "--set", *overrides]
    print("[demo]", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads((run_dir / "metrics.json").read_text())


def _steady_img_s(run_dir):
    """Median logged images/s over the second half of the run (compilation excluded)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["img_s"] for r in rows if "img_s" in r]
    return statistics.median(rates[len(rates) // 2:]) if rates else None


def run(framework, seeds, work, runs, collect=False):
    """Train every (run, seed) (or, with ``collect``, read the finished ones and skip the rest)."""
    cache = work / "teachers"
    results = {}
    teacher = None
    for name in runs:
        for seed in seeds:
            run_dir = work / f"{framework}_{name}_seed{seed}"
            sets = [*RUNS[name], f"train.seed={seed}", f"teacher.cache_dir={cache}"]
            if teacher is not None:
                sets.append(f"model.teacher_checkpoint={teacher}")
            if collect:
                if not (run_dir / "metrics.json").exists():
                    print(f"[demo] --collect: {run_dir} has no metrics.json; skipped")
                    continue
                metrics = json.loads((run_dir / "metrics.json").read_text())
            else:
                metrics = _train(framework, run_dir, sets)
            if teacher is None:
                teacher = str(next(cache.glob(f"*_{framework}.npz")))
                teacher_metrics = json.loads(next(cache.glob(f"*_{framework}_run/metrics.json")).read_text())
                results["teacher"] = {k: teacher_metrics[k] for k in ("top1", "top5")}
            entry = {k: v for k, v in metrics.items() if k not in ("train", "primary")}
            entry.update(train_time_s=metrics["train"]["train_time_s"], img_s=_steady_img_s(run_dir))
            results.setdefault(name, {})[f"seed{seed}"] = entry
    return results


BENCH = {
    # name -> (config, overrides): the demo pair and a paper-size pair (random teacher, demo photos at 224 px)
    "demo_resnet18_to_swin_32px_b32": (CONFIG, ["teacher.pretrain_epochs=0", "teacher.allow_random=true"]),
    "deit_tiny_to_resnet18_224px_b8": ("configs/ofakd/imagenet_deit_t_resnet18.yaml", [
        "data.root=null", "model.num_classes=8", "data.batch_size=8", "data.eval_batch_size=8",
        "teacher.allow_random=true", "train.eval_interval=0", "schedule.warmup_epochs=0"]),
}


def bench(steps, work, frameworks=("ms", "pt")):
    """Median steady step time (s) of the compiled MindSpore step and the eager PyTorch step."""
    out = {}
    for name, (config, sets) in BENCH.items():
        for fw in frameworks:
            run_dir = work / f"bench_{fw}_{name}"
            cmd = [sys.executable, str(REPO / "scripts/train.py"), "--config", config, "--framework", fw, "--device",
                   "CPU", "--run-dir", str(run_dir), "--set", *sets, f"train.max_steps={steps}", "train.epochs=1",
                   "train.log_interval=1", f"teacher.cache_dir={work / 'teachers'}"]
            print("[bench]", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
            batch = json.loads((run_dir / "metrics.json").read_text())
            times = [r["img_s"] for r in rows[2:] if r.get("img_s")]
            bs = int(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["batch_size"])
            out.setdefault(name, {})[fw] = {"step_s": round(bs / statistics.median(times), 4), "batch": bs,
                                            "first_step_and_compile_s": round(batch["train"]["train_time_s"]
                                                                              - sum(bs / t for t in times), 2)}
        if len(out[name]) == 2:
            out[name]["ms_over_pt"] = round(out[name]["ms"]["step_s"] / out[name]["pt"]["step_s"], 3)
    return out


def summarise(results):
    table = {}
    for name, per_seed in results.items():
        if name == "teacher":
            continue
        keys = sorted({k for e in per_seed.values() for k in e if k.endswith("top1") or k == "top5"})
        table[name] = {k: statistics.mean(e[k] for e in per_seed.values()) for k in keys}
    return table


def plot(table, teacher, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(names)), [table[n]["top1"] for n in names], color="tab:blue", label="student top-1")
    labelled = set()
    for i, n in enumerate(names):
        for s in range(1, 5):
            v = table[n].get(f"branch{s}_top1")
            if v is not None:
                ax.plot(i - 0.3 + 0.15 * s, v, "o", color=f"C{s}", label=None if s in labelled else f"branch {s}")
                labelled.add(s)
    ax.axhline(teacher["top1"], color="k", ls="--", label=f"teacher {teacher['top1']:.1f}")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=15)
    ax.set_ylabel("val top-1 (%)")
    ax.set_title("OFA-KD demo: ResNet-18 teacher -> small Swin student, 8-class photo set, 32 px")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", choices=["ms", "pt"], default="ms")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    ap.add_argument("--work", default="runs/ofakd_demo")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--bench", action="store_true", help="measure the distillation step time instead")
    ap.add_argument("--collect", action="store_true", help="only gather the finished runs under --work")
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args(argv)
    work = (REPO / args.work).resolve()
    if args.bench:
        report = {"note": "median over steps 3..N of the logged per-step wall time (data loading overlapped); "
                          "MindSpore: GRAPH-compiled TrainStep, PyTorch: eager; 2 shared CPU cores",
                  "steps": args.steps, "results": bench(args.steps, work)}
        path = REPO / args.out / "benchmarks" / "ofakd_step_time.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(json.dumps(report, indent=1))
        os.replace(path.with_suffix(".tmp"), path)
        print(json.dumps(report, indent=1))
        return
    results = run(args.framework, args.seeds, work, args.runs, args.collect)
    table = summarise(results)
    out = REPO / args.out
    report = {"framework": args.framework, "config": CONFIG, "seeds": args.seeds, "teacher": results["teacher"],
              "mean": table, "runs": {k: v for k, v in results.items() if k != "teacher"}}
    path = out / "benchmarks" / "ofakd_demo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)
    plot(table, results["teacher"], out / "ofakd_demo.png")
    print(json.dumps({"teacher": results["teacher"], **table}, indent=1))


if __name__ == "__main__":
    main()
