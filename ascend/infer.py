"""Run an exported model (MINDIR through MindSpore's GraphCell, or ONNX through onnxruntime) with
exactly the evaluation pipeline of ``scripts/eval.py``, and print the same metric.

    python ascend/infer.py --model exports/gold_yolo_n.mindir                  # built-in demo data
    python ascend/infer.py --model exports/gold_yolo_n.onnx --data /data/coco   # a COCO folder
    python ascend/infer.py --model exports/resnet50.mindir --config configs/classification/resnet50_imagenet.yaml \\
        --data /data/imagenet --device Ascend

The pre- and post-processing are not re-implemented here: the family's MindSpore task is built from
the config and its ``evaluate_with(predict, out_dir)`` runs (letterbox, NMS and COCOeval for
detection; resize, crop and top-k for classification; ...), with ``predict`` being the exported
graph. ``scripts/export.py`` writes ``<model>.json`` beside each export (family, config, overrides,
inputs with shapes and dtypes, and the part files of a multi-graph export such as image and text
towers); ``--config`` and ``--set`` take precedence over it. A graph exported with a static batch gets
its batches split and the last one padded, so any eval batch size works. ``evaluate_with`` receives
one callable ``predict(*arrays)`` for a single graph, or ``{part: predict}`` for a multi-graph export
(``--model`` may name any of its parts).
"""
import argparse
import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ms_models  # noqa: E402,F401  (sets the oneDNN ISA before mindspore loads)
from common.config import ConfigError, load_config  # noqa: E402
from common.runlog import write_json_atomic  # noqa: E402


class BatchAdapter:
    """``predict(*arrays) -> outputs`` over a runner with a fixed batch: splits larger inputs into
    chunks of ``batch`` and zero-pads the last chunk, then drops the padded rows. ``batch=None``
    (dynamic-batch export) passes inputs through. ``dtypes`` (one per graph input, from the export
    record) casts each input; without it a single input is cast to float32. A multi-output graph
    returns a tuple."""

    def __init__(self, run, batch=None, dtypes=None):
        self.run = run
        self.batch = batch
        self.dtypes = dtypes

    def __call__(self, *arrays):
        import numpy as np

        dtypes = self.dtypes or ["float32"] * len(arrays)
        if len(dtypes) != len(arrays):
            raise ValueError(f"the exported graph takes {len(dtypes)} inputs, got {len(arrays)}")
        arrays = [np.ascontiguousarray(x, dt) for x, dt in zip(arrays, dtypes)]
        n = arrays[0].shape[0]
        if self.batch is None or n == self.batch:
            outs = self.run(*arrays)
        else:
            chunks = []
            for i in range(0, n, self.batch):
                parts = [x[i:i + self.batch] for x in arrays]
                k = parts[0].shape[0]
                if k < self.batch:
                    parts = [np.concatenate([x, np.zeros((self.batch - k, *x.shape[1:]), x.dtype)]) for x in parts]
                chunks.append([o[:k] for o in self.run(*parts)])
            outs = [np.concatenate(col) for col in zip(*chunks)]
        return outs[0] if len(outs) == 1 else tuple(outs)


def read_export_info(model_path):
    """The ``<model>.json`` written by ``scripts/export.py`` ({} when absent)."""
    info_path = Path(str(model_path) + ".json")
    if not info_path.exists():
        return {}
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{info_path}: not valid JSON ({e}); re-export or pass --config") from None


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported .mindir or .onnx file")
    ap.add_argument("--config", default=None, help="family name or YAML (default: the one recorded at export)")
    ap.add_argument("--data", default=None, help="dataset folder (sets data.root); default: the config's, "
                                                  "else the family's built-in demo data")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--batch", type=int, default=None,
                    help="static batch of the graph when there is no <model>.json (default 1)")
    ap.add_argument("--device", default="auto", choices=["auto", "Ascend", "GPU", "CPU"],
                    help="device for MINDIR (ONNX runs on onnxruntime's CPU provider)")
    ap.add_argument("--out", default=None, help="folder for the eval outputs and metrics.json")
    return ap.parse_args(argv)


def resolve_config(args, info):
    """Config and overrides: export record first, then --config, --set and --data."""
    target = args.config or info.get("config")
    if not target:
        raise ValueError(f"{args.model}: no {args.model}.json beside it (written by scripts/export.py); "
                         "pass --config <family|yaml>")
    overrides = ([] if args.config else list(info.get("overrides", []))) + list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    return load_config(target, overrides), overrides


def main(argv=None):
    args = parse_args(argv)
    model_path = Path(args.model)
    if not model_path.exists():
        print(f"infer: {model_path} does not exist", file=sys.stderr)
        return 2
    if model_path.suffix.lower() not in (".mindir", ".onnx"):
        print(f"infer: {model_path}: expected a .mindir or .onnx file (AIR/OM files run with the CANN tools, "
              "see ascend/README.md)", file=sys.stderr)
        return 2
    try:
        info = read_export_info(model_path)
        cfg, overrides = resolve_config(args, info)
    except (ConfigError, ValueError) as e:
        print(f"infer: {e}", file=sys.stderr)
        return 2
    family = cfg._meta_.family
    parts = info.get("parts")
    if parts:
        inputs = {name: part["inputs"] for name, part in parts.items()}
    else:
        shape = info.get("input_shape")
        inputs = {None: info.get("inputs") or [{"name": "images", "dtype": "float32",
                                                "shape": shape or [args.batch or 1]}]}

    import mindspore as ms
    from ms_models.engine import check_device, select_device
    from ms_models.export import load_exported

    log = lambda msg: print(f"[infer] {msg}", file=sys.stderr)  # noqa: E731
    device = select_device(args.device, log=log)
    check_device(device)
    ms.set_seed(int(cfg.get("seed", 0) or 0))
    deploy = importlib.import_module(f"ms_models.{family}.deploy")
    adapt = getattr(deploy, "infer_overrides", None)
    if adapt is not None and (parts or info.get("inputs") or info.get("input_shape")):
        # one graph: the per-sample shape of its first input; several: {part: [per-sample input shapes]}
        arg = ({name: [s["shape"][1:] for s in specs] for name, specs in inputs.items()} if parts
               else inputs[None][0]["shape"][1:])
        extra = adapt(cfg, arg)
        if extra:
            log(f"static graph inputs {arg}: evaluating with {' '.join(extra)}")
            cfg = load_config(cfg._meta_.config_path, overrides + extra)
    task = importlib.import_module(f"ms_models.{family}.task").build_task(cfg)
    if not hasattr(task, "evaluate_with"):
        print(f"infer: the {family} task has no evaluate_with(predict, out_dir); it cannot evaluate an "
              "exported graph yet", file=sys.stderr)
        return 2

    def adapter(path, specs):
        batch = specs[0]["shape"][0] if specs and len(specs[0]["shape"]) > 0 else None
        return BatchAdapter(load_exported(path), batch, [s["dtype"] for s in specs])

    if parts:
        missing = [str(model_path.parent / p["file"]) for p in parts.values()
                   if not (model_path.parent / p["file"]).exists()]
        if missing:
            print(f"infer: {model_path} is one part of a multi-graph export; missing beside it: {', '.join(missing)}",
                  file=sys.stderr)
            return 2
        predict = {name: adapter(model_path.parent / p["file"], p["inputs"]) for name, p in parts.items()}
        desc = ", ".join(f"{name} batch {p['inputs'][0]['shape'][0] or 'dynamic'}" for name, p in parts.items())
    else:
        predict = adapter(model_path, inputs[None])
        desc = f"batch {inputs[None][0]['shape'][0] or 'dynamic'}"
    log(f"{model_path} ({model_path.suffix[1:].upper()}, {desc}) on {family} eval data")
    metrics = task.evaluate_with(predict, args.out)
    primary = metrics["primary"]
    print(f"[infer] {primary} = {metrics[primary]:.6g}")
    if args.out:
        write_json_atomic(Path(args.out) / "metrics.json", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
