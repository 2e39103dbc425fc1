"""Inference time per image of the DUKD teachers and students (x4 configs) in MindSpore and PyTorch.

    python -m ms_models.dukd.benchmark [--lr-size 64] [--iters 3] [--threads 2] [--scale 4]
                                       [--out docs/benchmarks/dukd_inference.json]

Each (arch, framework) pair runs in its own subprocess with the same thread count
(``torch.set_num_threads`` / ``mindspore.device_context.cpu.op_tuning.threads_num``,
``OMP_NUM_THREADS`` and ``OMP_WAIT_POLICY=PASSIVE``). MindSpore runs the network compiled (GRAPH
mode), PyTorch eager under ``inference_mode``; one LR image of ``lr_size`` x ``lr_size`` (batch 1), random weights (timing
does not depend on them). Reported: the median of ``iters`` timed calls after one warm-up call.
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

REPO = Path(__file__).resolve().parents[2]
ARCHS = ("edsr_teacher", "edsr_student", "rcan_teacher", "rcan_student", "swinir_teacher", "swinir_student")


def arch_spec(key, scale):
    """(registered name, kwargs) of the x``scale`` DUKD config's teacher or student."""
    from common.config import load_config
    arch, role = key.split("_")
    cfg = load_config(str(REPO / "configs" / "dukd" / f"{arch}_x{scale}.yaml"))
    section = cfg.teacher if role == "teacher" else cfg.model
    return section.name, dict(section.kwargs)


def measure(key, framework, lr_size, iters, threads, scale):
    import numpy as np
    name, kw = arch_spec(key, scale)
    x = np.random.default_rng(0).random((1, 3, lr_size, lr_size), dtype=np.float32)
    if framework == "ms":
        import mindspore as ms
        ms.set_device("CPU")
        ms.device_context.cpu.op_tuning.threads_num(threads)
        ms.set_context(mode=ms.GRAPH_MODE)
        import ms_models
        net = ms_models.create_model(name, **kw)
        net.set_train(False)
        xt = ms.Tensor(x)
        fn = lambda: net(xt).asnumpy()  # noqa: E731
        n_params = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    else:
        import torch
        torch.set_num_threads(threads)
        import pt_reference
        net = pt_reference.create_model(name, **kw).eval()
        xt = torch.from_numpy(x)

        def fn():
            with torch.inference_mode():
                return net(xt).numpy()
        n_params = sum(p.numel() for p in net.parameters())
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"arch": key, "model": name, "framework": framework, "params_m": round(n_params / 1e6, 3),
            "first_call_s": round(first, 3), "median_s": round(statistics.median(times), 4),
            "times_s": [round(t, 4) for t in times]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--lr-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--out", default="docs/benchmarks/dukd_inference.json")
    ap.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE"])
    ap.add_argument("--worker", nargs=2, metavar=("ARCH", "FRAMEWORK"))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker[0], args.worker[1], args.lr_size, args.iters, args.threads, args.scale)))
        return 0
    # PASSIVE: idle OpenMP threads sleep instead of spinning; on a shared, oversubscribed machine
    # torch's spinning workers made a 64-channel 3x3 conv at 48x48 take 330 ms instead of 4 ms.
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY=args.omp_wait_policy)
    rows = []
    start_load = os.getloadavg()
    for key in args.archs:
        for fw in ("ms", "pt"):
            cmd = [sys.executable, "-m", "ms_models.dukd.benchmark", "--worker", key, fw,
                   "--lr-size", str(args.lr_size), "--iters", str(args.iters), "--threads", str(args.threads), "--scale", str(args.scale)]
            out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"benchmark worker {key} {fw} failed:\n{out.stderr[-2000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{key:<15} {fw}: {row['median_s']:.3f} s/image (params {row['params_m']} M)", flush=True)
    result = {"scale": args.scale, "lr_size": args.lr_size, "threads": args.threads, "iters": args.iters,
              "omp_wait_policy": args.omp_wait_policy, "load_avg_at_start": start_load,
              "machine": platform.processor() or platform.machine(), "load_avg_at_end": os.getloadavg(),
              "rows": rows}
    from common.runlog import write_json_atomic
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
