"""Export a MindSpore network to MINDIR, AIR or ONNX, and run an exported file back.

MINDIR works on every device and may declare a dynamic batch axis; AIR needs the Ascend backend;
ONNX works where every op has an ONNX converter in MindSpore (the error names the first op that
has none). ``load_exported`` runs a MINDIR through ``nn.GraphCell`` and an ONNX file through
onnxruntime, so an export can be checked against the network it came from.
"""
import os
import re
from pathlib import Path

import numpy as np

FORMATS = ("MINDIR", "AIR", "ONNX")
_SUFFIX = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}


class ExportError(RuntimeError):
    """The requested export is impossible here; the message says why and what to do instead."""


INPUT_DTYPES = ("float32", "float16", "int32", "int64")


def input_specs(inputs):
    """Normalise a deploy module's input description to a list of dicts ``{name, shape, dtype, high}``
    (``shape`` without the batch axis; ``high`` the exclusive upper bound of integer inputs, e.g. the
    vocabulary size, used to draw check inputs).

    ``inputs`` is either a ``(C, H, W)``-like tuple of ints (one float32 input named ``images``, the
    image families) or a list of such dicts (token ids, masks, several tensors).
    """
    if len(inputs) and all(isinstance(d, (int, np.integer)) for d in inputs):
        return [{"name": "images", "shape": [int(d) for d in inputs], "dtype": "float32", "high": None}]
    specs = []
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict) or "shape" not in spec:
            raise ExportError(f"input {i}: expected a dict with 'name', 'shape' and 'dtype', got {spec!r}")
        dtype = str(spec.get("dtype", "float32"))
        if dtype not in INPUT_DTYPES:
            raise ExportError(f"input {spec.get('name', i)}: dtype '{dtype}' is not one of {', '.join(INPUT_DTYPES)}")
        specs.append({"name": str(spec.get("name", f"input{i}")), "shape": [int(d) for d in spec["shape"]],
                      "dtype": dtype, "high": spec.get("high")})
    return specs


def sample_inputs(specs, batch, rng):
    """Random arrays for ``specs`` at ``batch``: floats uniform in [0, 1), integers in [0, high)."""
    out = []
    for spec in specs:
        shape = (batch, *spec["shape"])
        if spec["dtype"].startswith("float"):
            out.append(rng.random(shape, dtype=np.float32).astype(spec["dtype"]))
        else:
            out.append(rng.integers(0, int(spec["high"] or 2), size=shape).astype(spec["dtype"]))
    return out


def export_network(net, input_shape, out_path, fmt="MINDIR", dynamic_batch=False, inputs=None):
    """Export ``net`` (eval mode) for a float32 input of ``input_shape`` (N, C, H, W), or, with
    ``inputs`` (see ``input_specs``), for those inputs at batch ``input_shape[0]``.

    ``dynamic_batch`` declares the batch axis as ``None`` (MINDIR only; ONNX and AIR are static).
    Returns the written path (the suffix follows the format).
    """
    import mindspore as ms

    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    device = ms.get_context("device_target")
    if fmt == "AIR" and device != "Ascend":
        raise ExportError(f"AIR export needs the Ascend backend (current device: {device}); "
                          "export MINDIR instead and convert it with converter_lite, see ascend/README.md")
    out_path = Path(out_path)
    stem = out_path.with_suffix("") if out_path.suffix.lower() in _SUFFIX.values() else out_path
    stem.parent.mkdir(parents=True, exist_ok=True)
    net.set_train(False)
    batch = int(input_shape[0])
    specs = input_specs(inputs if inputs is not None else tuple(input_shape[1:]))
    samples = []
    for spec in specs:
        dtype = getattr(ms, spec["dtype"])
        if dynamic_batch and fmt == "MINDIR":
            samples.append(ms.Tensor(shape=[None] + spec["shape"], dtype=dtype))
        else:
            samples.append(ms.Tensor(np.zeros((batch, *spec["shape"]), spec["dtype"])))
    try:
        if fmt == "ONNX":
            # ms.onnx.export, not the deprecated ms.export(file_format='ONNX'), which also chmods the
            # output folder to 0700 (all of /tmp for --out /tmp/x)
            # no output_names: MindSpore 2.10 renames the graph output but not the producing node
            # when the graph ends in some ops (ReduceSum), which onnxruntime rejects as invalid
            ms.onnx.export(net, *samples, file_name=str(stem) + ".onnx",
                           input_names=[spec["name"] for spec in specs])
        else:
            ms.export(net, *samples, file_name=str(stem), file_format=fmt)
    except RuntimeError as e:
        m = re.search(r"Can not find key (\w+) in convert map", str(e))
        if fmt == "ONNX" and m and m.group(1) == "Erf":
            raise ExportError("ONNX export is impossible for this network as trained: MindSpore has no ONNX "
                              "converter for the op 'Erf' (exact GELU). Export with --erf-free-gelu (a polynomial "
                              "erf, |error| <= 1.5e-7), or export MINDIR.") from None
        if fmt == "ONNX" and m:
            raise ExportError(f"ONNX export is impossible for this network: MindSpore has no ONNX converter for "
                              f"the op '{m.group(1)}'. Export MINDIR instead, or switch the model to a form "
                              f"without that op (the family's docs page lists what exports; Gold-YOLO: "
                              f"pool_mode=fixed_avgpool for adaptive pooling).") from None
        raise
    written = Path(str(stem) + _SUFFIX[fmt])
    if not written.exists():
        raise ExportError(f"MindSpore reported success but {written} was not written")
    return written


def load_exported(path):
    """A callable ``f(*arrays) -> list[np.ndarray]`` that runs an exported MINDIR or ONNX file.

    Arrays are passed in the graph's input order; float inputs are cast to float32, integer inputs
    keep their dtype (ONNX: cast to the graph's declared integer type).
    """
    path = Path(path)
    suffix = path.suffix.lower()

    def as_input(x):
        x = np.asarray(x)
        return np.ascontiguousarray(x, np.float32 if x.dtype.kind == "f" else x.dtype)

    if suffix == ".mindir":
        import mindspore as ms
        from mindspore import nn

        cell = nn.GraphCell(ms.load(str(path)))

        def run_mindir(*xs):
            out = cell(*[ms.Tensor(as_input(x)) for x in xs])
            outs = out if isinstance(out, (tuple, list)) else (out,)
            return [o.asnumpy() for o in outs]
        return run_mindir
    if suffix == ".onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        # Spin-waiting worker threads starve everything else on a shared or oversubscribed CPU
        # (measured: 200 s instead of 1 s for a ResNet-18 eval under load); latency cost is small.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        onnx_types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32,
                      "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
        feeds = [(i.name, onnx_types.get(i.type)) for i in sess.get_inputs()]

        def run_onnx(*xs):
            if len(xs) != len(feeds):
                raise ExportError(f"{path}: the graph takes {len(feeds)} inputs "
                                  f"({', '.join(n for n, _ in feeds)}), got {len(xs)}")
            return sess.run(None, {name: np.ascontiguousarray(x, dtype or as_input(x).dtype)
                                   for (name, dtype), x in zip(feeds, xs)})
        return run_onnx
    raise ExportError(f"{path}: cannot run '{suffix}' files here (expected .mindir or .onnx)")


def image_text_infer_overrides(cfg, shapes):
    """``infer_overrides`` of image/text tower pairs (CFAM, LightCLIP): ``data.img_size`` from the image
    graph and ``model.text_length`` (tokenisation length) from the text graph, when the config differs."""
    extra = []
    h, w = (int(s) for s in shapes["image"][0][-2:])
    if [h, w] != [int(s) for s in cfg.data.img_size]:
        extra.append(f"data.img_size=[{h},{w}]")
    length = int(shapes["text"][0][-1])
    if length != int(cfg.model.text_length):
        extra.append(f"model.text_length={length}")
    return extra
