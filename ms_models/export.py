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


def export_network(net, input_shape, out_path, fmt="MINDIR", dynamic_batch=False):
    """Export ``net`` (eval mode) for float32 input of ``input_shape`` (N, C, H, W).

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
    shape = list(input_shape)
    if dynamic_batch and fmt == "MINDIR":
        sample = ms.Tensor(shape=[None] + shape[1:], dtype=ms.float32)
    else:
        sample = ms.Tensor(np.zeros(shape, np.float32))
    try:
        if fmt == "ONNX":
            # ms.onnx.export, not the deprecated ms.export(file_format='ONNX'), which also chmods the
            # output folder to 0700 (all of /tmp for --out /tmp/x)
            ms.onnx.export(net, sample, file_name=str(stem) + ".onnx", input_names=["images"],
                           output_names=["outputs"])
        else:
            ms.export(net, sample, file_name=str(stem), file_format=fmt)
    except RuntimeError as e:
        m = re.search(r"Can not find key (\w+) in convert map", str(e))
        if fmt == "ONNX" and m:
            raise ExportError(f"ONNX export is impossible for this network: MindSpore has no ONNX converter for "
                              f"the op '{m.group(1)}'. Export MINDIR instead, or switch the model to a form "
                              f"without that op (e.g. pool_mode=fixed_avgpool for adaptive pooling).") from None
        raise
    written = Path(str(stem) + _SUFFIX[fmt])
    if not written.exists():
        raise ExportError(f"MindSpore reported success but {written} was not written")
    return written


def load_exported(path):
    """A callable ``f(np.ndarray) -> list[np.ndarray]`` that runs an exported MINDIR or ONNX file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mindir":
        import mindspore as ms
        from mindspore import nn

        cell = nn.GraphCell(ms.load(str(path)))

        def run_mindir(x):
            out = cell(ms.Tensor(np.ascontiguousarray(x, np.float32)))
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
        name = sess.get_inputs()[0].name

        def run_onnx(x):
            return sess.run(None, {name: np.ascontiguousarray(x, np.float32)})
        return run_onnx
    raise ExportError(f"{path}: cannot run '{suffix}' files here (expected .mindir or .onnx)")
