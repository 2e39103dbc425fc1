"""Convert weights between PyTorch and MindSpore naming for a registered model.

    python scripts/convert_weights.py --src resnet50.pth --dst resnet50.ckpt --model resnet50
    python scripts/convert_weights.py --src net.ckpt --dst net.pth --model deit_tiny_patch16_224 \
        --model-kw num_classes=10

The target model is built from the registry (MindSpore for pt2ms, PyTorch for ms2pt) to obtain its
parameter names and shapes; the source is renamed by the generic rules of ``common.weights``.
The direction follows from the extensions (.pt/.pth source or .ckpt destination: pt2ms; .ckpt
source or .pt/.pth destination: ms2pt) unless --direction is given.  A mismatch lists every
missing, unexpected and mis-shaped key and exits with status 2.
"""
import argparse
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.weights import WeightMismatchError, convert_state_dict, read_weights, write_weights  # noqa: E402

PT_EXTS = (".pt", ".pth")


def parse_model_kw(items):
    """``['num_classes=10', 'img_size=96']`` -> ``{'num_classes': 10, 'img_size': 96}`` (YAML scalars)."""
    kwargs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-kw expects key=value, got {item!r}")
        kwargs[key] = yaml.safe_load(value)
    return kwargs


def infer_direction(src, dst):
    """'pt2ms' or 'ms2pt' from the file extensions; ValueError when they do not decide it."""
    s, d = Path(src).suffix.lower(), Path(dst).suffix.lower()
    if s in PT_EXTS or d == ".ckpt":
        if s == ".ckpt" or d in PT_EXTS:
            raise ValueError(f"cannot convert {s} to {d}: one side must be PyTorch and the other MindSpore")
        return "pt2ms"
    if s == ".ckpt" or d in PT_EXTS:
        return "ms2pt"
    raise ValueError(f"cannot infer the direction from '{src}' -> '{dst}'; pass --direction pt2ms|ms2pt")


def target_shapes(model, kwargs, direction):
    """Names and shapes of the target network, built from its registry with ``kwargs``."""
    if direction == "pt2ms":
        import mindspore as ms

        import ms_models
        from ms_models.utils.weights import target_shapes as shapes

        ms.set_device("CPU")
        return shapes(ms_models.create_model(model, **kwargs))
    import pt_reference
    from pt_reference.utils.weights import target_shapes as shapes

    return shapes(pt_reference.create_model(model, **kwargs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="source weights (.pt/.pth/.safetensors/.ckpt/.npz)")
    parser.add_argument("--dst", required=True, help="destination file; its extension selects the format")
    parser.add_argument("--model", required=True, help="registered model name, e.g. resnet50")
    parser.add_argument("--model-kw", nargs="*", default=[], metavar="K=V", help="model kwargs, e.g. num_classes=10")
    parser.add_argument("--direction", choices=("pt2ms", "ms2pt"), help="default: inferred from the extensions")
    parser.add_argument("--no-strict", action="store_true", help="tolerate missing and unexpected keys")
    args = parser.parse_args(argv)
    try:
        direction = args.direction or infer_direction(args.src, args.dst)
        kwargs = parse_model_kw(args.model_kw)
    except ValueError as err:
        parser.error(str(err))
    if not os.path.isfile(args.src):
        parser.error(f"--src '{args.src}' does not exist")
    state = read_weights(args.src)
    shapes = target_shapes(args.model, kwargs, direction)
    try:
        out = convert_state_dict(state, shapes, direction, strict=not args.no_strict)
    except WeightMismatchError as err:
        print(f"convert_weights: refusing to write '{args.dst}' for model '{args.model}':\n{err}", file=sys.stderr)
        return 2
    write_weights(args.dst, out)
    print(f"wrote {len(out)} tensors ({direction}) for '{args.model}' to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
