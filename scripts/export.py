"""Export a trained model: MINDIR (every device), AIR (Ascend), ONNX (where every op converts).

    python scripts/export.py --config gold_yolo --ckpt runs/gold_yolo/<run>/best.ckpt --format MINDIR
    python scripts/export.py --config configs/gold_yolo/gold_yolo_n.yaml --format ONNX --batch 1

The family's deploy module (``ms_models/<family>/deploy.py``) builds the inference form (e.g.
Gold-YOLO with RepVGG reparameterisation and Conv+BN fusion): ``build_export_net(cfg, weights)`` for
one graph, or ``build_export_parts(cfg, weights)`` for several (e.g. image and text towers, written
as ``<out>.<part>.<suffix>``); inputs are an image shape or typed specs (token ids), see
docs/dev/CONTRACTS.md. After writing, the exported file is
run on a random input (a dynamic-batch MINDIR at two batch sizes) and compared with the MindSpore
network; the max abs diff is printed, and the exit code is 1 when it exceeds the forward tolerance
1e-4 * max(1, max|output|).
"""
import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ms_models  # noqa: E402,F401  (sets the oneDNN ISA before mindspore loads)
from common.config import ConfigError, load_config  # noqa: E402


def write_export_info(path, **info):
    """``<file>.json`` beside an export: family, config and overrides, input shape (batch None when
    dynamic), format and checkpoint, so ``ascend/infer.py`` rebuilds the same eval pipeline."""
    from common.runlog import write_json_atomic
    write_json_atomic(Path(str(path) + ".json"), info)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="family name or config YAML")
    ap.add_argument("--ckpt", default=None, help="training checkpoint (.ckpt, EMA weights preferred) or weight file; "
                                                 "omitted: random weights (for testing the export path)")
    ap.add_argument("--format", default="MINDIR", choices=["MINDIR", "AIR", "ONNX", "mindir", "air", "onnx"])
    ap.add_argument("--out", default=None, help="output path (default: exports/<config name>.<suffix>)")
    ap.add_argument("--batch", type=int, default=1, help="static batch size of the exported graph")
    ap.add_argument("--dynamic-batch", action="store_true", help="MINDIR only: batch axis left open")
    ap.add_argument("--device", default="CPU", help="device used for export (AIR needs Ascend)")
    ap.add_argument("--erf-free-gelu", action="store_true",
                    help="replace every exact GELU by a polynomial-erf form (|error| <= 1.5e-7; MindSpore 2.10 has "
                         "no ONNX converter for Erf, so ViT/Swin/BERT-type models need this for --format ONNX)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    import numpy as np
    import mindspore as ms

    from ms_models.engine.checkpoint import read_eval_weights
    from ms_models.export import ExportError, export_network, input_specs, load_exported, sample_inputs

    from ms_models.engine import select_device
    select_device(args.device, log=lambda msg: print(f"[export] {msg}", file=sys.stderr))
    family = cfg._meta_.family
    try:
        deploy = importlib.import_module(f"ms_models.{family}.deploy")
    except ModuleNotFoundError:
        print(f"export: family '{family}' has no deploy module (ms_models/{family}/deploy.py)", file=sys.stderr)
        return 2
    weights = read_eval_weights(args.ckpt) if args.ckpt else None
    if hasattr(deploy, "build_export_parts"):
        built = deploy.build_export_parts(cfg, weights)
    else:
        built = {None: deploy.build_export_net(cfg, weights)}
    if args.erf_free_gelu:
        from ms_models.layers.erf_free import swap_gelu
        swapped = sum(swap_gelu(net) for net, _, _ in built.values())
        print(f"--erf-free-gelu: {swapped} GELU cells replaced" if swapped else
              "--erf-free-gelu: the network has no nn.GELU cell; nothing replaced", file=sys.stderr)
    fmt = args.format.upper()
    if args.dynamic_batch and fmt != "MINDIR":
        print(f"export: --dynamic-batch needs --format MINDIR ({fmt} graphs have a static batch; use --batch N)",
              file=sys.stderr)
        return 2
    if args.dynamic_batch and not all(dyn_ok for _, _, dyn_ok in built.values()):
        print(f"export: {family} cannot be exported with a dynamic batch (see ms_models/{family}/deploy.py); "
              "use --batch N", file=sys.stderr)
        return 2
    out = Path(args.out or f"exports/{Path(cfg._meta_.config_path).stem}")
    stem = out.with_suffix("") if out.suffix.lower() in (".mindir", ".air", ".onnx") else out
    batch_dim = None if args.dynamic_batch else args.batch
    try:
        specs = {part: input_specs(inputs) for part, (_, inputs, _) in built.items()}
        written = {}
        for part, (net, _, _) in built.items():
            target = stem if part is None else stem.with_name(f"{stem.name}.{part}")
            written[part] = export_network(net, (args.batch,), target, fmt, dynamic_batch=args.dynamic_batch,
                                           inputs=specs[part])
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    def recorded(part):
        return [{"name": s["name"], "shape": [batch_dim, *s["shape"]], "dtype": s["dtype"]} for s in specs[part]]
    info = dict(family=family, config=str(cfg._meta_.config_path), overrides=list(args.overrides), fmt=fmt,
                ckpt=args.ckpt, erf_free_gelu=bool(args.erf_free_gelu))
    if None in written:
        first = specs[None][0]
        if len(specs[None]) == 1 and first["name"] == "images":
            info["input_shape"] = [batch_dim, *first["shape"]]
        info["inputs"] = recorded(None)
    else:
        info["parts"] = {part: {"file": path.name, "inputs": recorded(part)} for part, path in written.items()}
    for part, path in written.items():
        shapes = ", ".join(f"{s['name']} {tuple([batch_dim if batch_dim else 'N', *s['shape']])} {s['dtype']}"
                           for s in specs[part])
        print(f"wrote {path} ({fmt}, input {shapes})")
        write_export_info(path, **info, **({} if part is None else {"part": part}))
    if fmt == "AIR":
        return 0
    batches = (args.batch, args.batch + 1) if args.dynamic_batch else (args.batch,)
    status = 0
    for part, path in written.items():
        net = built[part][0]
        run = load_exported(path)
        rng = np.random.default_rng(0)
        diff, scale = 0.0, 0.0
        for b in batches:
            xs = sample_inputs(specs[part], b, rng)
            ref = net(*[ms.Tensor(x) for x in xs])
            ref = [r.asnumpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
            got = run(*xs)
            if [r.shape for r in ref] != [g.shape for g in got]:
                print(f"export: check failed at batch {b}: output shapes {[g.shape for g in got]} from {path}, "
                      f"expected {[r.shape for r in ref]}", file=sys.stderr)
                return 1
            diff = max([diff] + [float(np.abs(r.astype(np.float64) - g).max()) for r, g in zip(ref, got)])
            scale = max([scale] + [float(np.abs(r).max()) for r in ref])
        print(f"check: {path.name} vs MindSpore network, max abs diff {diff:.3g} (max |output| {scale:.3g}, "
              f"batch {', '.join(map(str, batches))})")
        if diff > 1e-4 * max(1.0, scale):
            print(f"export: check failed for {path.name}: max abs diff {diff:.3g} exceeds 1e-4 * max(1, max|output|)",
                  file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
