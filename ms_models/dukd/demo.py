"""DUKD demo on the built-in photos (MindSpore by default): train the teacher (EDSR c32 b8, L1),
then the student (EDSR c16 b4) from scratch, with output KD and with DUKD; report PSNR-Y and
PSNR(student, teacher) on the held-out photos, write a JSON table and a PNG of crops.

    python -m ms_models.dukd.demo [--framework ms|pt] [--teacher-steps 1200] [--student-steps 600]
                                  [--seeds 0] [--out docs/benchmarks/dukd_demo.json] [--png docs/dukd_demo.png]

Each run goes through the engine (``Trainer``) with configs/dukd/demo.yaml plus overrides; the
evaluated weights are the EMA weights, as in BasicSR.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from common.config import load_config
from common.metrics.sr import psnr
from common.runlog import make_run_dir, write_json_atomic
from common.sr_resize import imresize
from common.sr_task import super_resolve_image

TEACHER = "{num_feat: 32, num_block: 8, upscale: 2, res_scale: 1.0, img_range: 255.0}"
STEPS_PER_EPOCH = 45          # 9 photos x enlarge_ratio 40 / batch 8
LR_PATCH = 24


def _epochs(steps):
    return max(1, math.ceil(steps / STEPS_PER_EPOCH))


def _overrides(steps, seed, extra):
    epochs = _epochs(steps)
    return [f"train.max_steps={steps}", f"train.epochs={epochs}", f"train.seed={seed}", f"data.lr_patch={LR_PATCH}",
            f"schedule.milestones=[{max(1, int(epochs * 0.7))}]", *extra]


def _backend(framework):
    if framework == "ms":
        import mindspore as ms
        ms.set_device("CPU")
        ms.runtime.launch_blocking()
        ms.set_seed(0)
        from ms_models.dukd import task as task_mod
        from ms_models.engine import Trainer
        return task_mod, Trainer
    import torch
    torch.manual_seed(0)
    from pt_reference.dukd import task as task_mod
    from pt_reference.engine import Trainer
    return task_mod, Trainer


def _run(framework, cfg, run_dir):
    task_mod, trainer_cls = _backend(framework)
    task = task_mod.build_task(cfg)
    trainer = trainer_cls(task, cfg, run_dir)
    t0 = time.perf_counter()
    metrics = trainer.fit()
    return task, trainer, metrics, time.perf_counter() - t0


def _predict(framework, trainer, task):
    """{image name: uint8 SR} of the held-out images with the EMA weights."""
    model = task.model
    if framework == "ms":
        import mindspore as ms
        model.set_train(False)
        run = lambda x: model(ms.Tensor(x)).asnumpy()  # noqa: E731
        swap = trainer.ema.swapped()
    else:
        import torch
        model.eval()

        def run(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        swap = trainer.ema.swapped(model)
    with swap:
        return {name: super_resolve_image(run, lr, task.scale) for name, _, lr in task.data.eval_sets["demo"]}


def _plain_runner(framework, model):
    if framework == "ms":
        import mindspore as ms
        model.set_train(False)
        return lambda x: model(ms.Tensor(x)).asnumpy()
    import torch
    model.eval()

    def run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run


def _save_teacher(framework, trainer, task, path):
    if framework == "ms":
        import mindspore as ms
        with trainer.ema.swapped():
            ms.save_checkpoint(task.model, str(path))
    else:
        import torch
        with trainer.ema.swapped(task.model):
            torch.save({"params": task.model.state_dict()}, path)


def _png(images, hr_items, path, crop=64):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(images)
    fig, axes = plt.subplots(len(hr_items), len(names) + 2, figsize=(2.2 * (len(names) + 2), 2.3 * len(hr_items)))
    for r, (img_name, hr, lr) in enumerate(hr_items):
        h, w = hr.shape[:2]
        top, left = (h - crop) // 2, (w - crop) // 2
        scale = hr.shape[0] // lr.shape[0]
        bic = np.round(np.clip(imresize(lr / 255.0, scale), 0, 1) * 255).astype(np.uint8)
        cols = [("HR", hr), ("bicubic", bic)] + [(n, images[n][img_name]) for n in names]
        for c, (title, im) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(im[top:top + crop, left:left + crop], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(img_name, fontsize=9)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--framework", choices=["ms", "pt"], default="ms")
    ap.add_argument("--teacher-steps", type=int, default=1200)
    ap.add_argument("--student-steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--lr-patch", type=int, default=24)
    ap.add_argument("--teacher-weights", default=None,
                    help="use this trained demo teacher (.ckpt for ms, .pth for pt) instead of training one")
    ap.add_argument("--runs-root", default="runs/dukd_demo")
    ap.add_argument("--out", default="docs/benchmarks/dukd_demo.json")
    ap.add_argument("--png", default="docs/dukd_demo.png")
    args = ap.parse_args(argv)
    global LR_PATCH
    LR_PATCH = args.lr_patch
    root = Path(args.runs_root)
    results = {"framework": args.framework, "teacher_steps": args.teacher_steps,
               "student_steps": args.student_steps, "seeds": args.seeds, "lr_patch": args.lr_patch, "runs": []}
    cfg = load_config("configs/dukd/demo.yaml", _overrides(args.teacher_steps, 0, [
        f"model.kwargs={TEACHER}", "dukd.method=scratch"]))
    if args.teacher_weights:
        teacher_path = Path(args.teacher_weights)
        task_mod, _ = _backend(args.framework)
        task = task_mod.build_task(cfg)
        task_mod.load_sr_weights(task.model, str(teacher_path))
        run = _plain_runner(args.framework, task.model)
        images = {"teacher": {n: super_resolve_image(run, lr, task.scale) for n, _, lr in task.data.eval_sets["demo"]}}
        metrics = task.evaluate(task.model)
        results["teacher"] = {"psnr_y": metrics["demo/psnr_y"], "ssim_y": metrics["demo/ssim_y"],
                              "weights": str(teacher_path), "trained_here": False}
    else:
        task, trainer, metrics, secs = _run(args.framework, cfg, make_run_dir(root, "teacher"))
        ext = ".ckpt" if args.framework == "ms" else ".pth"
        teacher_path = Path(trainer.run_dir) / f"teacher_ema{ext}"
        _save_teacher(args.framework, trainer, task, teacher_path)
        images = {"teacher": _predict(args.framework, trainer, task)}
        results["teacher"] = {"psnr_y": metrics["demo/psnr_y"], "ssim_y": metrics["demo/ssim_y"],
                              "train_s": round(secs, 1), "weights": str(teacher_path)}
    print(f"[demo] teacher: PSNR-Y {metrics['demo/psnr_y']:.3f} dB", flush=True)
    hr_items = task.data.eval_sets["demo"]
    bic = [psnr(np.round(np.clip(imresize(lr / 255.0, task.scale), 0, 1) * 255).astype(np.uint8), hr, task.scale)
           for _, hr, lr in hr_items]
    results["bicubic_psnr_y"] = float(np.mean(bic))
    for seed in args.seeds:
        for method in ("scratch", "kd", "dukd"):
            cfg = load_config("configs/dukd/demo.yaml", _overrides(args.student_steps, seed, [
                f"dukd.method={method}", f"teacher.weights={teacher_path}"]))
            task, trainer, metrics, secs = _run(args.framework, cfg, make_run_dir(root, f"{method}_s{seed}"))
            preds = _predict(args.framework, trainer, task)
            st = float(np.mean([psnr(preds[n], images["teacher"][n], task.scale) for n in preds]))
            row = {"method": method, "seed": seed, "psnr_y": metrics["demo/psnr_y"], "ssim_y": metrics["demo/ssim_y"],
                   "psnr_student_teacher": st, "train_s": round(secs, 1)}
            results["runs"].append(row)
            print(f"[demo] {method} seed {seed}: PSNR-Y {row['psnr_y']:.3f}, PSNR(S,T) {st:.3f}, {secs:.0f} s",
                  flush=True)
            if seed == args.seeds[0]:
                images[method] = preds
                _png(images, hr_items, args.png)
            write_json_atomic(args.out, results)
    _png(images, hr_items, args.png)
    write_json_atomic(args.out, results)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
