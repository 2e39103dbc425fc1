"""Train a family on MindSpore (default) or its PyTorch reference.

    python scripts/train.py --config gold_yolo                       # configs/gold_yolo/demo.yaml
    python scripts/train.py --config configs/x/y.yaml --framework pt --set train.epochs=2
    python scripts/train.py --config x --resume auto                 # continue the latest run of x

The task comes from ``<tree>.<family>.task.build_task(cfg)`` (tree: ms_models or pt_reference;
family: ``cfg.family``, else the config's folder name), or from ``--task module:callable``. The run
folder is ``train.output_dir`` (default ``runs/<family>``) / ``<timestamp>_<config>``. Under msrun
(MindSpore) or torchrun (PyTorch) with several workers it trains data-parallel.
"""
import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ms_models.platform  # noqa: E402,F401  (oneDNN settings before mindspore loads)
from common.config import ConfigError, load_config  # noqa: E402
from common.runlog import find_latest_run, make_run_dir, run_parent  # noqa: E402
from common.train_loop import NonFiniteLossError  # noqa: E402
from common.train_options import TrainOptions  # noqa: E402

TREES = {"ms": "ms_models", "pt": "pt_reference"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML path or family name (-> configs/<family>/demo.yaml)")
    ap.add_argument("--framework", choices=sorted(TREES), default="ms")
    ap.add_argument("--device", choices=["auto", "Ascend", "GPU", "CPU"], default="auto")
    ap.add_argument("--set", dest="overrides", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. --set train.epochs=3 optim.lr=0.01")
    ap.add_argument("--resume", default=None, metavar="PATH|auto",
                    help="checkpoint to continue from, or 'auto' for the latest run of this config "
                         "(default: train.resume)")
    ap.add_argument("--run-dir", default=None, help="run folder (default: a new <timestamp>_<config> folder)")
    ap.add_argument("--task", default=None, metavar="MODULE:CALLABLE",
                    help="build the task with this callable (cfg -> task) instead of the family's build_task")
    return ap.parse_args(argv)


def load_task_builder(spec, framework, family):
    """The ``build_task`` callable of ``spec`` ('module:callable') or of the family's task module."""
    if spec:
        module, _, attr = spec.partition(":")
        if not attr:
            raise ValueError(f"--task must look like module:callable, got '{spec}'")
        return getattr(importlib.import_module(module), attr)
    name = f"{TREES[framework]}.{family}.task"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name in (name, f"{TREES[framework]}.{family}"):
            raise ValueError(f"family '{family}' has no {framework} task module {name}") from None
        raise
    return module.build_task


def resolve_run(args, cfg, opts, family, config_name, is_main, ckpt_suffix):
    """``(run_dir, resume_checkpoint_or_None)`` from --run-dir / --resume / train.resume."""
    resume = args.resume if args.resume is not None else opts.resume
    parent = run_parent(cfg, family)
    ckpt_name = f"last{ckpt_suffix}"
    if resume == "auto":
        folder = Path(args.run_dir) if args.run_dir else find_latest_run(parent, config_name, ckpt_name)
        if folder is not None and (folder / ckpt_name).exists():
            return folder, folder / ckpt_name
        print(f"[train] --resume auto: no {ckpt_name} of config '{config_name}' under {parent}; starting fresh",
              file=sys.stderr)
        resume = None
    if resume:
        resume = Path(resume)
        if not resume.is_file():
            raise FileNotFoundError(f"--resume: checkpoint not found: {resume}")
        return (Path(args.run_dir) if args.run_dir else resume.parent), resume
    if args.run_dir:
        return Path(args.run_dir), None
    return make_run_dir(parent, config_name, create=is_main), None


def setup_framework(framework, device, seed):
    """Select the device, initialise data parallelism and seed; returns (trainer_cls, device, rank)."""
    log = lambda msg: print(f"[train] {msg}", file=sys.stderr)  # noqa: E731
    if framework == "ms":
        import mindspore as ms
        from ms_models.engine import Trainer, setup_device
        dev, rank, world = setup_device(device, log=log)
        ms.set_seed(seed)
    else:
        import torch
        from pt_reference.engine import Trainer, init_distributed, select_device
        dev = select_device(device, log=log)
        rank, world = init_distributed(dev)
        torch.manual_seed(seed)
    if world > 1:
        log(f"data parallel: rank {rank} of {world}")
    return Trainer, dev, rank


def main(argv=None):
    args = parse_args(argv)
    overrides = [kv for group in args.overrides for kv in group]
    try:
        cfg = load_config(args.config, overrides)
        opts = TrainOptions.from_config(cfg)
        family = cfg.get("family") or cfg["_meta_"]["family"]
        config_name = Path(cfg["_meta_"]["config_path"]).stem
        build_task = load_task_builder(args.task, args.framework, family)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer_cls, device, rank = setup_framework(args.framework, args.device, opts.seed)
    run_dir, resume = resolve_run(args, cfg, opts, family, config_name, rank == 0, trainer_cls.ckpt_suffix)
    task = build_task(cfg)
    trainer = trainer_cls(task, cfg, run_dir, device=device)
    try:
        metrics = trainer.fit(resume=resume)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if rank == 0:
        key = metrics.get("primary")
        print(f"{key}: {metrics.get(key)}")
        print(f"run folder: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
