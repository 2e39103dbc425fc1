"""Train-step overhead of RPG on PyTorch (eager; twin of ``ms_models/rpg/bench_overhead.py``): the
engine's plain TrainStep, the RPG step of an ordinary iteration, the RPG step of the iteration
before a mask update (rank loss + dense gradients, no optimizer step), and the mask update.

    python -m pt_reference.rpg.bench_overhead [--model rpg_cifar_resnet20] [--img 32] [--batch 64] [--reps 5]
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _median_ms(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    times.sort()
    return round(times[len(times) // 2], 2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="rpg_cifar_resnet20")
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "rpg_overhead_pt.json"))
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from common.config import load_config
    from common.train_options import TrainOptions
    from pt_reference.engine.optim import build_optimizer
    from pt_reference.engine.train_step import TrainStep
    from pt_reference.rpg.task import build_task
    from pt_reference.rpg.train_step import RPGTrainStep

    cfg = load_config("rpg", [f"model.name={args.model}", f"data.img_size={args.img}", f"data.batch_size={args.batch}",
                              "model.num_classes=10", "rpg.lamb=1.0"])
    task = build_task(cfg)
    groups = task.param_groups(task.model)
    opt = build_optimizer(groups, TrainOptions.from_config(cfg))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((args.batch, 3, args.img, args.img)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, args.batch).astype(np.int64))
    hyper = (np.full(len(groups), 0.01), np.full(len(groups), 0.9), np.array([g["weight_decay"] for g in groups]))
    task.model.train()
    plain = TrainStep(task, task.model, opt)
    rpg = RPGTrainStep(task, task.model, opt)
    sched = task.pruner.schedule
    normal_s = 0
    rank_s = sched.delta - 1

    def run_rpg(s):
        task.pruner.set_steps_done(s)
        return float(rpg(*hyper, x, y)[0])

    res = {"framework": "pt", "model": args.model, "img": args.img, "batch": args.batch, "reps": args.reps,
           "threads": torch.get_num_threads(), "prunable_layers": len(task.pruner.weights),
           "conv_layers": len(task.pruner.conv_weights),
           "prunable_params": int(sum(w.numel() for w in task.pruner.weights))}
    res["plain_step_ms"] = _median_ms(lambda: float(plain(*hyper, x, y)[0]), args.reps)
    res["rpg_step_ms"] = _median_ms(lambda: run_rpg(normal_s), args.reps)
    res["rank_loss_step_ms"] = _median_ms(lambda: run_rpg(rank_s), args.reps)
    step = next(s for s in range(sched.delta, sched.t_end, sched.delta) if sched.update_index(s) >= 1)
    res["mask_update_ms"] = _median_ms(lambda: task.pruner.update(step), max(1, args.reps // 2))
    res["mask_update_step"] = step
    res["delta"] = sched.delta
    res["per_iteration_overhead_pct_at_delta_100"] = round(100 * (
        (res["rpg_step_ms"] - res["plain_step_ms"]) * 99 + (res["rank_loss_step_ms"] - res["plain_step_ms"])
        + res["mask_update_ms"]) / (100 * res["plain_step_ms"]), 1)
    res["load_average_1min"] = round(__import__("os").getloadavg()[0], 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(out)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
