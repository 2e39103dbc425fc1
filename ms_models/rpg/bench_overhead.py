"""Train-step overhead of RPG on MindSpore (GRAPH mode): the engine's plain TrainStep, the RPG step
of an ordinary iteration (gradient, momentum and weight masking), the RPG step of the iteration
before a mask update (rank loss with one SVD per conv layer, dense-gradient capture, no optimizer
step), and the host-side mask update (global magnitude pruning + RigL drop/grow).

    python -m ms_models.rpg.bench_overhead [--model rpg_cifar_resnet20] [--img 32] [--batch 64] [--reps 5]

Median wall times in ms go to ``docs/benchmarks/rpg_overhead_ms.json`` (the PyTorch twin writes
``rpg_overhead_pt.json``).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import ms_models.platform  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def _median_ms(fn, reps):
    fn()  # compile / warm up
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
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "rpg_overhead_ms.json"))
    args = ap.parse_args(argv)
    import numpy as np
    import mindspore as ms
    from mindspore import Tensor

    from common.config import load_config
    from common.train_options import TrainOptions
    from ms_models.engine.optim import build_optimizer, hyper_tensors
    from ms_models.engine.train_step import TrainStep
    from ms_models.rpg.schedule import StepKind
    from ms_models.rpg.task import build_task
    from ms_models.rpg.train_step import RPGStepCell

    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    cfg = load_config("rpg", [f"model.name={args.model}", f"data.img_size={args.img}", f"data.batch_size={args.batch}",
                              "model.num_classes=10", "rpg.lamb=1.0"])
    task = build_task(cfg)
    groups = task.param_groups(task.model)
    opt = build_optimizer(groups, TrainOptions.from_config(cfg))
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, 3, args.img, args.img)).astype(np.float32))
    y = Tensor(rng.integers(0, 10, args.batch).astype(np.int32))
    hyper = hyper_tensors(np.full(len(groups), 0.01), np.full(len(groups), 0.9), [g["weight_decay"] for g in groups])
    plain = TrainStep(task, task.model, opt)
    normal = RPGStepCell(task, task.model, opt, StepKind(rank=False, accumulate=False, update=True))
    rank = RPGStepCell(task, task.model, opt, StepKind(rank=True, accumulate=True, update=False))
    res = {"framework": "ms", "model": args.model, "img": args.img, "batch": args.batch, "reps": args.reps,
           "prunable_layers": len(task.pruner.weights), "conv_layers": len(task.pruner.conv_weights),
           "prunable_params": int(sum(int(np.prod(w.shape)) for w in task.pruner.weights))}
    ms.set_context(mode=ms.GRAPH_MODE)
    res["plain_step_ms"] = _median_ms(lambda: plain(*hyper, x, y)[0].asnumpy(), args.reps)
    res["rpg_step_ms"] = _median_ms(lambda: normal(*hyper, x, y)[0].asnumpy(), args.reps)
    res["rank_loss_step_ms"] = _median_ms(lambda: rank(*hyper, x, y)[0].asnumpy(), args.reps)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    sched = task.pruner.schedule
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
