"""Throughput of MindSpore vs PyTorch on CPU: inference and one SGD training step.

    python scripts/benchmark.py [--models resnet18 deit_tiny_patch16_224 gold_yolo_n@640]
                                [--batch 8] [--img-size 224] [--iters 20] [--warmup 5] [--threads 2]
                                [--out docs/benchmarks] [--name classification]

Each (model, framework) pair is measured in its own subprocess (``--worker`` mode, the function
:func:`measure`) with the same thread count: ``torch.set_num_threads(n)`` on PyTorch,
``mindspore.device_context.cpu.op_tuning.threads_num(n)`` on MindSpore, and
``OMP_NUM_THREADS=n`` for both. MindSpore runs in GRAPH mode: inference is the compiled network;
the training step is ``ms.value_and_grad`` + ``nn.SGD`` inside one ``ms.jit`` function. PyTorch
runs eager: ``inference_mode`` forward; forward/backward/``SGD.step``. After ``--warmup``
untimed iterations, the median of ``--iters`` timed iterations gives images/s.

The loss of the training step is the cross-entropy with fixed labels when the model returns one
(B, C) tensor, else the sum over its output tensors of ``mean(x ** 2)`` (any model, e.g. a
detector). ``name@size`` sets a model's own input size. Writes ``<out>/<name>.json`` and
``<out>/<name>.png`` and prints a table with the MindSpore/PyTorch ratios.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _timed(fn, warmup, iters):
    """(first call seconds, median seconds of ``iters`` calls after ``warmup`` more)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def _inputs(spec):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["batch"], 3, spec["img_size"], spec["img_size"])).astype(np.float32)
    y = rng.integers(0, spec["num_classes"], spec["batch"]).astype(np.int32)
    return x, y


def _measure_ms(spec):
    import mindspore as ms
    from mindspore import nn, ops

    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    ms.device_context.cpu.op_tuning.threads_num(spec["threads"])
    ms.set_context(mode=ms.GRAPH_MODE)
    from ms_models import create_model

    x_np, y_np = _inputs(spec)
    x, y = ms.Tensor(x_np), ms.Tensor(y_np)
    net = create_model(spec["model"], **spec["model_kwargs"])
    net.set_train(False)

    def infer():
        out = net(x)
        (out[0] if isinstance(out, (tuple, list)) else out).asnumpy()

    infer_first, infer_t = _timed(infer, spec["warmup"], spec["iters"])

    net.set_train(True)
    opt = nn.SGD(net.trainable_params(), learning_rate=0.01, momentum=0.9)

    def square_mean(t):
        return (t.astype(ms.float32) ** 2).mean()

    def loss_of(out, labels):
        # Detector outputs nest at most two levels deep; unrolled loops keep this graph-compilable.
        if isinstance(out, (tuple, list)):
            total = 0.0
            for o in out:
                if isinstance(o, (tuple, list)):
                    for p in o:
                        total = total + square_mean(p)
                else:
                    total = total + square_mean(o)
            return total
        if out.ndim == 2:
            return ops.cross_entropy(out, labels)
        return square_mean(out)

    def forward(images, labels):
        return loss_of(net(images), labels)

    grad_fn = ms.value_and_grad(forward, None, opt.parameters)

    @ms.jit
    def step(images, labels):
        loss, grads = grad_fn(images, labels)
        opt(grads)
        return loss

    def train():
        step(x, y).asnumpy()

    train_first, train_t = _timed(train, spec["warmup"], spec["iters"])
    return {"version": ms.__version__, "infer_first_s": infer_first, "infer_s": infer_t,
            "train_first_s": train_first, "train_s": train_t,
            "threads_api": f"mindspore.device_context.cpu.op_tuning.threads_num({spec['threads']}); GRAPH_MODE"}


def _measure_pt(spec):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(spec["threads"])
    from pt_reference import create_model

    x_np, y_np = _inputs(spec)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np).long()
    net = create_model(spec["model"], **spec["model_kwargs"])
    net.eval()

    def infer():
        with torch.inference_mode():
            net(x)

    infer_first, infer_t = _timed(infer, spec["warmup"], spec["iters"])

    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def tensors(out):
        if isinstance(out, (tuple, list)):
            return [t for o in out for t in tensors(o)]
        return [out]

    def loss_of(out):
        if not isinstance(out, (tuple, list)) and out.ndim == 2:
            return F.cross_entropy(out, y)
        return sum((t.float() ** 2).mean() for t in tensors(out))

    def train():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(net(x))
        loss.backward()
        opt.step()

    train_first, train_t = _timed(train, spec["warmup"], spec["iters"])
    return {"version": torch.__version__, "infer_first_s": infer_first, "infer_s": infer_t,
            "train_first_s": train_first, "train_s": train_t,
            "threads_api": f"torch.set_num_threads({spec['threads']})"}


def measure(spec):
    """Measure one (model, framework) in this process; ``spec`` keys: framework ('ms'|'pt'), model,
    model_kwargs, batch, img_size, num_classes (label range of the cross-entropy), iters, warmup,
    threads. Models are built with their default arguments plus model_kwargs. Returns a dict of seconds
    (first call, median per iteration) for inference and the training step."""
    result = (_measure_ms if spec["framework"] == "ms" else _measure_pt)(spec)
    for kind in ("infer", "train"):
        result[f"{kind}_images_per_s"] = spec["batch"] / result[f"{kind}_s"]
    return result


ISA_VARS = ("DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")


def worker_env(spec, pt_isa_cap=False):
    """Environment of a worker: ``OMP_NUM_THREADS``; MindSpore keeps the project's oneDNN ISA cap
    (``ms_models.platform``: AVX2, its AVX-512 NCHW convolution is a naive kernel); PyTorch runs with
    its own default ISA unless ``pt_isa_cap``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if spec["framework"] == "ms":
        for var in ISA_VARS:
            env.setdefault(var, "AVX2")
    elif not pt_isa_cap:
        for var in ISA_VARS:
            env.pop(var, None)
    return env


def run_in_subprocess(spec, timeout=1800, pt_isa_cap=False, script=None):
    """Run ``script --worker <spec as JSON>`` (default: this file, i.e. :func:`measure`) in a fresh
    interpreter (environment from :func:`worker_env`); returns the dict the worker printed on its
    ``BENCH_RESULT`` line."""
    env = worker_env(spec, pt_isa_cap)
    script = Path(script or __file__).resolve()
    proc = subprocess.run([sys.executable, str(script), "--worker", json.dumps(spec)],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"benchmark worker for {spec['framework']}:{spec.get('model')} failed "
                           f"(exit {proc.returncode}):\n{tail}")
    result = json.loads(lines[-1][len("BENCH_RESULT "):])
    result["env"] = {k: env[k] for k in ("OMP_NUM_THREADS",) + ISA_VARS if k in env}
    return result


def _parse_model(text, default_size):
    name, _, size = text.partition("@")
    return name, int(size) if size else default_size


def _plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = [f"{r['model']}\n{r['img_size']}px" for r in rows]
    pos = np.arange(len(rows))
    for ax, kind in zip(axes, ("infer", "train")):
        ms_v = [r["ms"][f"{kind}_images_per_s"] for r in rows]
        pt_v = [r["pt"][f"{kind}_images_per_s"] for r in rows]
        ax.bar(pos - 0.2, ms_v, 0.4, label="MindSpore")
        ax.bar(pos + 0.2, pt_v, 0.4, label="PyTorch")
        for p, a, b in zip(pos, ms_v, pt_v):
            ax.text(p, max(a, b), f"x{a / b:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("images / s")
        ax.set_title("inference (eval)" if kind == "infer" else "train step (fwd+bwd+SGD)")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "deit_tiny_patch16_224"],
                    help="registered model names, optionally name@img_size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks"), help="output folder")
    ap.add_argument("--name", default="classification", help="file stem of the JSON and PNG")
    ap.add_argument("--pt-isa-cap", action="store_true",
                    help="also cap PyTorch's oneDNN at AVX2 (default: PyTorch uses its default ISA)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print("BENCH_RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return 0

    load_before = os.getloadavg()
    rows = []
    for text in args.models:
        name, size = _parse_model(text, args.img_size)
        row = {"model": name, "img_size": size, "batch": args.batch}
        for fw in ("ms", "pt"):
            spec = {"framework": fw, "model": name, "model_kwargs": {}, "batch": args.batch, "img_size": size,
                    "num_classes": 1000, "iters": args.iters, "warmup": args.warmup, "threads": args.threads}
            print(f"[benchmark] {name} @ {size}px, batch {args.batch}, {fw} ...", flush=True)
            row[fw] = run_in_subprocess(spec, pt_isa_cap=args.pt_isa_cap)
        row["ratio_infer"] = row["ms"]["infer_images_per_s"] / row["pt"]["infer_images_per_s"]
        row["ratio_train"] = row["ms"]["train_images_per_s"] / row["pt"]["train_images_per_s"]
        rows.append(row)

    head = f"{'model':<26}{'px':>5}  {'infer MS':>9} {'infer PT':>9} {'MS/PT':>6}  {'train MS':>9} {'train PT':>9} {'MS/PT':>6}"
    print("\nimages/s (median), batch", args.batch, "threads", args.threads)
    print(head)
    for r in rows:
        print(f"{r['model']:<26}{r['img_size']:>5}  {r['ms']['infer_images_per_s']:>9.1f} "
              f"{r['pt']['infer_images_per_s']:>9.1f} {r['ratio_infer']:>6.2f}  {r['ms']['train_images_per_s']:>9.1f} "
              f"{r['pt']['train_images_per_s']:>9.1f} {r['ratio_train']:>6.2f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_before": load_before, "load_avg_after": os.getloadavg()},
        "settings": {"batch": args.batch, "iters": args.iters, "warmup": args.warmup, "threads": args.threads,
                     "pt_isa_cap": args.pt_isa_cap},
        "results": rows,
    }
    tmp = out / f".{args.name}.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out / f"{args.name}.json")
    title = (f"CPU throughput, batch {args.batch}, {args.threads} threads each "
             f"(MindSpore {rows[0]['ms']['version']} GRAPH, PyTorch {rows[0]['pt']['version']} eager)")
    _plot(rows, out / f"{args.name}.png", title)
    print(f"wrote {out / (args.name + '.json')} and {out / (args.name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
