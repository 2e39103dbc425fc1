"""Evaluate a checkpoint with the family's ``task.evaluate``.

    python scripts/eval.py --config gold_yolo --ckpt runs/gold_yolo/<run>/best.ckpt
    python scripts/eval.py --config configs/x/y.yaml --ckpt last.pt --framework pt

``--ckpt`` is a training checkpoint (the EMA weights are used when present; ``--no-ema`` takes the
live weights) or a plain weight file of the framework (.ckpt for MindSpore, .pt for PyTorch).
Writes ``eval_metrics.json`` into ``--out`` (default: ``<ckpt folder>/eval_<ckpt stem>``) and
prints the metrics.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ms_models.platform  # noqa: E402,F401  (oneDNN settings before mindspore loads)
from common.config import ConfigError, load_config  # noqa: E402
from common.runlog import write_json_atomic  # noqa: E402
from common.train_options import TrainOptions  # noqa: E402
from scripts.train import TREES, load_task_builder  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML path or family name")
    ap.add_argument("--ckpt", required=True, help="training checkpoint or weight file")
    ap.add_argument("--framework", choices=sorted(TREES), default="ms")
    ap.add_argument("--device", choices=["auto", "Ascend", "GPU", "CPU"], default="auto")
    ap.add_argument("--set", dest="overrides", action="append", nargs="+", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None, help="folder for eval outputs")
    ap.add_argument("--no-ema", action="store_true", help="evaluate the live weights, not the EMA")
    ap.add_argument("--task", default=None, metavar="MODULE:CALLABLE", help="as in train.py")
    return ap.parse_args(argv)


def _load_and_evaluate(framework, device, seed, build_task, cfg, ckpt, prefer_ema, out):
    log = lambda msg: print(f"[eval] {msg}", file=sys.stderr)  # noqa: E731
    if framework == "ms":
        import mindspore as ms
        from ms_models.engine import check_device, read_eval_weights, select_device
        from ms_models.utils.weights import load_numpy_state
        check_device(select_device(device, log=log))
        ms.set_seed(seed)
        task = build_task(cfg)
        load_numpy_state(task.model, read_eval_weights(ckpt, prefer_ema=prefer_ema), strict=True)
        task.model.set_train(False)
        return task.evaluate(task.model, out)
    import torch
    from pt_reference.engine import read_eval_weights, select_device
    dev = select_device(device, log=log)
    torch.manual_seed(seed)
    task = build_task(cfg)
    task.model.load_state_dict(read_eval_weights(ckpt, prefer_ema=prefer_ema), strict=True)
    task.model.to(dev).eval()
    with torch.no_grad():
        return task.evaluate(task.model, out)


def main(argv=None):
    args = parse_args(argv)
    overrides = [kv for group in args.overrides for kv in group]
    try:
        cfg = load_config(args.config, overrides)
        family = cfg.get("family") or cfg["_meta_"]["family"]
        build_task = load_task_builder(args.task, args.framework, family)
        seed = TrainOptions.from_config(cfg).seed
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        print(f"error: --ckpt not found: {ckpt}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else ckpt.parent / f"eval_{ckpt.stem}"
    out.mkdir(parents=True, exist_ok=True)
    metrics = _load_and_evaluate(args.framework, args.device, seed, build_task, cfg, ckpt, not args.no_ema, out)
    write_json_atomic(out / "eval_metrics.json", metrics)
    print(json.dumps(metrics, indent=2, default=str))
    key = metrics.get("primary")
    print(f"{key}: {metrics.get(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
