"""Shared steps of the export tests: the export -> infer round trip through both command lines, and
the check of image/text tower exports (CFAM, LightCLIP) against the training model's encoders."""
import json
from pathlib import Path

import numpy as np

import mindspore as ms

from ascend.infer import BatchAdapter, main as infer_main
from common.weights import write_weights
from ms_models.export import load_exported
from ms_models.utils.weights import state_numpy
from scripts.export import main as export_main


def export_and_infer(tmp_path, config, model, overrides, fmt, batch_args, stem):
    """Write ``model``'s weights, export them with ``scripts/export.py`` and run ``ascend/infer.py`` on
    the file (both must exit 0); returns (exported path, infer metrics)."""
    weights = tmp_path / f"{stem}_weights.npz"
    write_weights(weights, state_numpy(model))
    sets = [a for o in overrides for a in ("--set", o)]
    out = tmp_path / stem
    assert export_main(["--config", config, "--ckpt", str(weights), "--format", fmt, *batch_args,
                        "--out", str(out), *sets]) == 0
    path = Path(f"{out}.{fmt.lower()}")
    assert infer_main(["--model", str(path), "--out", str(tmp_path / "infer"), "--device", "CPU"]) == 0
    return path, json.loads((tmp_path / "infer" / "metrics.json").read_text())


def check_towers(model, stem, suffix, batch, images, ids, dim, tag):
    for part, x, ref in (("image", images, model.encode_image(ms.Tensor(images)).asnumpy()),
                         ("text", ids, model.encode_text(ms.Tensor(ids)).asnumpy())):
        dtype = "float32" if part == "image" else "int32"
        got = BatchAdapter(load_exported(f"{stem}.{part}.{suffix}"), batch, [dtype])(x)
        diff = float(np.abs(got - ref).max())
        print(f"[{tag}] {suffix} {part} tower vs encode_{part} on demo data: max abs diff {diff:.2e}")
        assert got.shape == ref.shape == (len(x), dim)
        assert diff <= 1e-4 * max(1.0, float(np.abs(ref).max()))
