"""Gold-YOLO on CPU: MindSpore vs PyTorch vs onnxruntime, inference and one real training step.

    python scripts/benchmark_gold_yolo.py [--variant n] [--img-size 640] [--batches 1 8] [--train-batch 8]
                                          [--iters 10] [--warmup 3] [--threads 2] [--out docs/benchmarks]
                                          [--skip-train]

Inference runs the deploy form (RepVGG reparameterised, Conv+BN fused, fixed average pooling):
MindSpore GRAPH mode (``ms_models/gold_yolo/deploy.py::build_export_net``), PyTorch eager under
``inference_mode`` (the twin with ``reparam.switch_to_deploy``), and onnxruntime on the ONNX file
MindSpore exports from the same deploy network (one static-batch file per batch). Input: float32
(B, 3, S, S) in [0, 1]; per batch, latency = median ms per call and throughput = B / latency.

The training step (batch ``--train-batch``) is the real one: training-form network (adaptive
pooling, drop path), the config's ``GoldYoloLoss`` (N: DFL reg_max 16, SIoU) on fixed synthetic
labels (``--boxes`` boxes per image, padded with zero rows to ``--max-boxes``), YOLOv6 parameter
groups and SGD with nesterov momentum (torch semantics; MindSpore: ``ms.value_and_grad`` plus
``ms_models.engine.optim.SGD`` in one ``ms.jit`` function under GRAPH mode; PyTorch eager).

Every (framework, job, batch) runs in its own subprocess (``--worker``, helpers of
``scripts/benchmark.py``) with the same thread count; a worker reports its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) in MB. The ONNX export runs in a separate worker; if it fails,
the onnxruntime entries carry the error text instead of numbers. Writes ``<out>/gold_yolo.json`` and
``<out>/gold_yolo.png`` and prints a table with the speed ratios MindSpore/PyTorch and
onnxruntime/MindSpore (> 1: the first is faster). The load average before/after is recorded
(the machine may be shared).
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import REPO, _timed, run_in_subprocess  # noqa: E402

NUM_CLASSES = 80  # COCO head
FRAMEWORKS = {"ms": "MindSpore GRAPH", "pt": "PyTorch eager", "ort": "onnxruntime"}
WORKER_TIMEOUT_S = 3 * 3600


def peak_rss_mb():
    """Peak resident set size of this process so far, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cfg(spec):
    from common.config import load_config
    return load_config(str(REPO / "configs" / "gold_yolo" / f"gold_yolo_{spec['variant']}.yaml"),
                       [f"data.img_size={spec['img_size']}", f"model.num_classes={NUM_CLASSES}"])


def synthetic_batch(batch, img_size, boxes, max_boxes, seed=0):
    """Images (B, 3, S, S) float32 in [0, 1] and labels (B, max_boxes, 5) float32 rows
    [cls, x1, y1, x2, y2] in pixels: ``boxes`` boxes per image (sides 5-40 % of S, inside the
    image), the remaining rows zero (padding)."""
    import numpy as np
    if not 0 < boxes <= max_boxes:
        raise ValueError(f"--boxes must be in 1..--max-boxes ({max_boxes}), got {boxes}")
    rng = np.random.default_rng(seed)
    images = rng.random((batch, 3, img_size, img_size), dtype=np.float32)
    labels = np.zeros((batch, max_boxes, 5), np.float32)
    half = rng.uniform(0.025, 0.2, (batch, boxes, 2)) * img_size
    centre = rng.uniform(0.25, 0.75, (batch, boxes, 2)) * img_size
    labels[:, :boxes, 0] = rng.integers(0, NUM_CLASSES, (batch, boxes))
    labels[:, :boxes, 1:3] = centre - half
    labels[:, :boxes, 3:5] = centre + half
    return images, labels


def _ms_setup(spec):
    import mindspore as ms
    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    ms.device_context.cpu.op_tuning.threads_num(spec["threads"])
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    return ms


def _pt_setup(spec):
    import torch
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    return torch


def _infer_result(spec, first, median, out_shape):
    return {"batch": spec["batch"], "latency_ms": median * 1e3, "images_per_s": spec["batch"] / median,
            "first_call_s": first, "output_shape": list(out_shape)}


def _infer_ms(spec):
    ms = _ms_setup(spec)
    from ms_models.gold_yolo.deploy import build_export_net

    import_mb = peak_rss_mb()
    net, _, _ = build_export_net(_cfg(spec))
    x = ms.Tensor(synthetic_batch(spec["batch"], spec["img_size"], 1, 1)[0])
    shape = []

    def infer():
        out = net(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        shape[:] = out.asnumpy().shape

    first, median = _timed(infer, spec["warmup"], spec["iters"])
    return dict(_infer_result(spec, first, median, shape), version=ms.__version__, import_rss_mb=import_mb,
                api=f"threads_num({spec['threads']}); GRAPH_MODE; deploy form")


def _infer_pt(spec):
    torch = _pt_setup(spec)
    from pt_reference import create_model
    from pt_reference.gold_yolo.reparam import switch_to_deploy
    from pt_reference.gold_yolo.task import model_kwargs

    import_mb = peak_rss_mb()
    kwargs = dict(model_kwargs(_cfg(spec), NUM_CLASSES), pool_mode="fixed_avgpool")
    net = create_model(f"gold_yolo_{spec['variant']}", **kwargs).eval()
    switch_to_deploy(net)
    x = torch.from_numpy(synthetic_batch(spec["batch"], spec["img_size"], 1, 1)[0])
    shape = []

    def infer():
        with torch.inference_mode():
            out = net(x)
        shape[:] = (out[0] if isinstance(out, (tuple, list)) else out).shape

    first, median = _timed(infer, spec["warmup"], spec["iters"])
    return dict(_infer_result(spec, first, median, shape), version=torch.__version__, import_rss_mb=import_mb,
                api=f"torch.set_num_threads({spec['threads']}); eager; inference_mode; deploy form")


def _infer_ort(spec):
    import onnxruntime as ort
    from ms_models.export import load_exported

    import_mb = peak_rss_mb()
    run = load_exported(spec["onnx"])  # intra-op threads = OMP_NUM_THREADS (set by the parent)
    x = synthetic_batch(spec["batch"], spec["img_size"], 1, 1)[0]
    shape = []

    def infer():
        shape[:] = run(x)[0].shape

    first, median = _timed(infer, spec["warmup"], spec["iters"])
    return dict(_infer_result(spec, first, median, shape), version=ort.__version__, import_rss_mb=import_mb,
                api=f"intra_op_num_threads={os.environ.get('OMP_NUM_THREADS')}; CPUExecutionProvider")


def _export(spec):
    """ONNX files of the MindSpore deploy network, one per batch, into ``spec['dir']``; never raises.
    Returns {'files': {batch: {'path', 'size_mb'} or {'error'}}}; the first exported batch also has
    the max abs diff of onnxruntime vs the MindSpore network on the benchmark input and the max abs
    MindSpore output (the scale of the DESIGN.md forward tolerance)."""
    import numpy as np
    import traceback

    results = {}
    try:
        ms = _ms_setup(spec)
        ms.set_context(mode=ms.PYNATIVE_MODE)  # one forward for the check; no graph compile needed
        from ms_models.export import export_network, load_exported
        from ms_models.gold_yolo.deploy import build_export_net
        net, chw, _ = build_export_net(_cfg(spec))
    except Exception as e:  # the error text is the report
        return {"files": {str(b): {"error": f"{type(e).__name__}: {e}"} for b in spec["batches"]}}
    checked = False
    for b in spec["batches"]:
        stem = Path(spec["dir"]) / f"gold_yolo_{spec['variant']}_{spec['img_size']}_b{b}"
        try:
            path = export_network(net, (b, *chw), stem, "ONNX")
            results[str(b)] = {"path": str(path), "size_mb": path.stat().st_size / 2 ** 20}
            if not checked:
                x = synthetic_batch(b, spec["img_size"], 1, 1)[0]
                ref = net(ms.Tensor(x))
                ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).asnumpy()
                got = load_exported(path)(x)[0]
                results[str(b)].update(max_abs_diff_vs_ms=float(np.abs(ref - got).max()),
                                       max_abs_ms_output=float(np.abs(ref).max()))
                checked = True
        except Exception as e:
            tail = traceback.format_exception_only(type(e), e)[-1].strip()
            results[str(b)] = {"error": tail}
    return {"files": results}


def _train_ms(spec):
    ms = _ms_setup(spec)
    from mindspore import ops
    from common.gold_yolo_groups import effective_weight_decay, yolov6_groups
    from ms_models import create_model
    from ms_models.engine.optim import SGD, hyper_tensors
    from ms_models.gold_yolo.task import loss_from_cfg, model_kwargs

    import_mb = peak_rss_mb()
    cfg = _cfg(spec)
    net = create_model(f"gold_yolo_{spec['variant']}", **model_kwargs(cfg, NUM_CLASSES))
    net.set_train(True)
    loss_fn = loss_from_cfg(cfg, NUM_CLASSES)
    wd = effective_weight_decay(cfg.optim.weight_decay, spec["batch"], cfg.solver.batch_size_ref)
    groups = yolov6_groups([(p.name, p) for p in net.trainable_params()], wd, cfg.solver.warmup_bias_lr)
    opt = SGD(groups, nesterov=cfg.optim.nesterov)
    hyper = hyper_tensors([cfg.optim.lr] * len(groups), [cfg.optim.momentum] * len(groups),
                          [g["weight_decay"] for g in groups])
    images, labels = (ms.Tensor(a) for a in synthetic_batch(spec["batch"], spec["img_size"], spec["boxes"],
                                                               spec["max_boxes"]))

    def forward(x, y):
        return loss_fn(net(x), y)[0]

    grad_fn = ms.value_and_grad(forward, None, opt.parameters)

    @ms.jit
    def step(x, y, lrs, moms, wds):
        loss, grads = grad_fn(x, y)
        return ops.depend(loss, opt(grads, lrs, moms, wds))

    losses = []

    def train():
        losses.append(float(step(images, labels, *hyper).asnumpy()))

    first, median = _timed(train, spec["warmup"], spec["iters"])
    return {"batch": spec["batch"], "step_s": median, "images_per_s": spec["batch"] / median, "first_step_s": first,
            "loss_first": losses[0], "loss_last": losses[-1], "version": ms.__version__, "import_rss_mb": import_mb,
            "api": f"threads_num({spec['threads']}); GRAPH_MODE; value_and_grad + engine SGD in ms.jit"}


def _train_pt(spec):
    torch = _pt_setup(spec)
    from common.gold_yolo_groups import effective_weight_decay, yolov6_groups
    from pt_reference import create_model
    from pt_reference.gold_yolo.task import loss_from_cfg, model_kwargs

    import_mb = peak_rss_mb()
    cfg = _cfg(spec)
    net = create_model(f"gold_yolo_{spec['variant']}", **model_kwargs(cfg, NUM_CLASSES)).train()
    loss_fn = loss_from_cfg(cfg, NUM_CLASSES)
    wd = effective_weight_decay(cfg.optim.weight_decay, spec["batch"], cfg.solver.batch_size_ref)
    norm_weights = {f"{n}.weight" for n, m in net.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    groups = yolov6_groups(named, wd, cfg.solver.warmup_bias_lr, is_norm_weight=norm_weights.__contains__)
    opt = torch.optim.SGD([{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups],
                          lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=cfg.optim.nesterov)
    images, labels = (torch.from_numpy(a) for a in synthetic_batch(spec["batch"], spec["img_size"], spec["boxes"],
                                                                      spec["max_boxes"]))
    losses = []

    def train():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(images), labels)[0]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    first, median = _timed(train, spec["warmup"], spec["iters"])
    return {"batch": spec["batch"], "step_s": median, "images_per_s": spec["batch"] / median, "first_step_s": first,
            "loss_first": losses[0], "loss_last": losses[-1], "version": torch.__version__, "import_rss_mb": import_mb,
            "api": f"torch.set_num_threads({spec['threads']}); eager; SGD nesterov"}


_JOBS = {("ms", "infer"): _infer_ms, ("pt", "infer"): _infer_pt, ("ort", "infer"): _infer_ort,
         ("ms", "export"): _export, ("ms", "train"): _train_ms, ("pt", "train"): _train_pt}


def measure(spec):
    """Run one job in this process. ``spec``: framework ('ms'|'pt'|'ort'), job ('infer'|'train'|'export'),
    variant, img_size, batch (or batches for export), iters, warmup, threads, boxes, max_boxes, onnx
    (ort), dir (export). Adds ``peak_rss_mb``."""
    result = _JOBS[(spec["framework"], spec["job"])](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _run(spec):
    what = ("ONNX export of the MindSpore deploy network, batches " + " ".join(map(str, spec["batches"]))
            if spec["job"] == "export" else f"{spec['job']} {FRAMEWORKS[spec['framework']]} batch {spec['batch']}")
    print(f"[benchmark_gold_yolo] {what} ...", flush=True)
    t0 = time.perf_counter()
    try:
        result = run_in_subprocess(spec, timeout=WORKER_TIMEOUT_S, script=__file__)
    except (RuntimeError, subprocess.TimeoutExpired) as e:  # one failed worker must not lose the others
        print(f"[benchmark_gold_yolo] failed: {e}", flush=True)
        result = {"error": str(e)}
    result["worker_wall_s"] = time.perf_counter() - t0
    return result


def _speed_ratio(a, b):
    """a / b of two result dicts' images_per_s, None when either has no number."""
    if a is None or b is None or "images_per_s" not in a or "images_per_s" not in b:
        return None
    return a["images_per_s"] / b["images_per_s"]


def run_benchmark(args):
    """All workers in sequence; returns the report dict."""
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    base = {"model": f"gold_yolo_{args.variant}", "variant": args.variant, "img_size": args.img_size,
            "iters": args.iters, "warmup": args.warmup, "threads": args.threads}
    infer = {fw: {} for fw in FRAMEWORKS}
    with tempfile.TemporaryDirectory(prefix="gold_yolo_onnx_") as tmp:
        export = _run(dict(base, framework="ms", job="export", batches=args.batches, dir=tmp))
        if "error" in export:
            export["files"] = {str(b): {"error": export["error"]} for b in args.batches}
        for b in args.batches:
            for fw in ("ms", "pt"):
                infer[fw][str(b)] = _run(dict(base, framework=fw, job="infer", batch=b))
            exported = export["files"][str(b)]
            if "error" in exported:
                infer["ort"][str(b)] = {"batch": b, "error": f"ONNX export failed: {exported['error']}"}
                continue
            infer["ort"][str(b)] = _run(dict(base, framework="ort", job="infer", batch=b, onnx=exported["path"]))
    for entry in export["files"].values():
        entry.pop("path", None)
    train = {}
    if not args.skip_train:
        for fw in ("ms", "pt"):
            train[fw] = _run(dict(base, framework=fw, job="train", batch=args.train_batch, boxes=args.boxes,
                                  max_boxes=args.max_boxes))
    ratios = {"infer_ms_over_pt": {b: _speed_ratio(infer["ms"][b], infer["pt"][b]) for b in infer["ms"]},
              "infer_ort_over_ms": {b: _speed_ratio(infer["ort"][b], infer["ms"][b]) for b in infer["ms"]},
              "train_ms_over_pt": _speed_ratio(train.get("ms"), train.get("pt"))}
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "load_avg_before": load_before,
                    "load_avg_after": os.getloadavg()},
        "settings": dict(base, batches=args.batches, train_batch=args.train_batch, boxes=args.boxes,
                         max_boxes=args.max_boxes, skip_train=args.skip_train,
                         ratio_meaning="images/s of the first over the second (> 1: the first is faster)"),
        "export": export, "inference": infer, "train": train, "ratios": ratios,
        "wall_s": time.perf_counter() - t_start,
    }


def _fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def print_table(report):
    s = report["settings"]
    print(f"\nGold-YOLO-{s['variant'].upper()} @ {s['img_size']}px, {s['threads']} threads, "
          f"median of {s['iters']} after {s['warmup']} warm-up")
    print(f"{'inference':<18}{'batch':>6}{'latency ms':>12}{'images/s':>10}{'peak MB':>9}")
    for fw, name in FRAMEWORKS.items():
        for b, r in report["inference"][fw].items():
            if "error" in r:
                print(f"{name:<18}{b:>6}  error: {r['error'].splitlines()[-1][:120]}")
            else:
                print(f"{name:<18}{b:>6}{r['latency_ms']:>12.1f}{r['images_per_s']:>10.2f}{r['peak_rss_mb']:>9.0f}")
    if report["train"]:
        print(f"{'train step':<18}{'batch':>6}{'step s':>12}{'images/s':>10}{'peak MB':>9}")
        for fw, r in report["train"].items():
            if "error" in r:
                print(f"{FRAMEWORKS[fw]:<18}{s['train_batch']:>6}  error: {r['error'].splitlines()[-1][:120]}")
            else:
                print(f"{FRAMEWORKS[fw]:<18}{r['batch']:>6}{r['step_s']:>12.2f}{r['images_per_s']:>10.2f}"
                      f"{r['peak_rss_mb']:>9.0f}")
    rt = report["ratios"]
    print("speed ratios (> 1: first faster):")
    for b in rt["infer_ms_over_pt"]:
        print(f"  inference batch {b}: MindSpore/PyTorch {_fmt(rt['infer_ms_over_pt'][b], '.2f')}, "
              f"onnxruntime/MindSpore {_fmt(rt['infer_ort_over_ms'][b], '.2f')}")
    if report["train"]:
        print(f"  train step: MindSpore/PyTorch {_fmt(rt['train_ms_over_pt'], '.2f')}")
    m = report["machine"]
    print(f"load average before {m['load_avg_before'][0]:.2f}, after {m['load_avg_after'][0]:.2f}; "
          f"total {report['wall_s']:.0f} s")


def plot(report, path):
    """Left: inference images/s per batch and framework; right: train step seconds per framework."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    s = report["settings"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    batches = list(report["inference"]["ms"])
    pos = np.arange(len(batches))
    width = 0.8 / len(FRAMEWORKS)
    ax = axes[0]
    for i, (fw, name) in enumerate(FRAMEWORKS.items()):
        vals = [report["inference"][fw][b].get("images_per_s", 0.0) for b in batches]
        bars = ax.bar(pos + (i - 1) * width, vals, width, label=name)
        for bar, b in zip(bars, batches):
            r = report["inference"][fw][b]
            text = f"{r['images_per_s']:.1f}" if "images_per_s" in r else "failed"
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), text, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(pos)
    ax.set_xticklabels([f"batch {b}" for b in batches])
    ax.set_ylabel("images / s")
    ax.set_title("inference, deploy form", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    if report["train"]:
        fws = list(report["train"])
        vals = [report["train"][fw].get("step_s", 0.0) for fw in fws]
        bars = ax.bar(range(len(fws)), vals, 0.6, color=["C0", "C1"][:len(fws)])
        for bar, v in zip(bars, vals):
            ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.2f} s" if v else "failed", ha="center",
                    va="bottom", fontsize=8)
        ax.set_xticks(range(len(fws)))
        ax.set_xticklabels([FRAMEWORKS[fw] for fw in fws], fontsize=8)
        ax.set_ylabel("seconds / step")
        ax.set_title(f"train step, batch {s['train_batch']} (loss + SGD nesterov)", fontsize=9)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "train step skipped", ha="center", va="center")
    la = report["machine"]["load_avg_before"][0]
    fig.suptitle(f"Gold-YOLO-{s['variant'].upper()} @ {s['img_size']}px on CPU, {s['threads']} threads each "
                 f"(load avg {la:.1f} at start)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="n", choices=["n", "s", "m", "l"])
    ap.add_argument("--img-size", type=int, default=640, help="input side, a multiple of 64 (fixed pooling)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="inference batch sizes")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10, help="timed iterations (median)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations before timing (the first compiles)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--boxes", type=int, default=8, help="synthetic boxes per image (train step)")
    ap.add_argument("--max-boxes", type=int, default=160, help="label rows per image incl. zero padding "
                                                               "(data.max_boxes of the config)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks"), help="output folder")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print("BENCH_RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return 0
    if args.img_size % 64:
        ap.error(f"--img-size must be a multiple of 64 (fixed pooling of the deploy form), got {args.img_size}")
    if min(args.batches + [args.train_batch, args.iters, args.warmup, args.threads]) < 1:
        ap.error("--batches, --train-batch, --iters, --warmup and --threads must be >= 1")

    report = run_benchmark(args)
    print_table(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".gold_yolo.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out / "gold_yolo.json")
    plot(report, out / "gold_yolo.png")
    print(f"wrote {out / 'gold_yolo.json'} and {out / 'gold_yolo.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
