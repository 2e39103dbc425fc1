"""Shared check for image/text tower exports (CFAM, LightCLIP): each exported tower, run through
``ascend.infer.BatchAdapter`` on real demo inputs, equals the training model's encoder within the
forward tolerance."""
import numpy as np

import mindspore as ms

from ascend.infer import BatchAdapter
from ms_models.export import load_exported


def check_towers(model, stem, suffix, batch, images, ids, dim, tag):
    for part, x, ref in (("image", images, model.encode_image(ms.Tensor(images)).asnumpy()),
                         ("text", ids, model.encode_text(ms.Tensor(ids)).asnumpy())):
        dtype = "float32" if part == "image" else "int32"
        got = BatchAdapter(load_exported(f"{stem}.{part}.{suffix}"), batch, [dtype])(x)
        diff = float(np.abs(got - ref).max())
        print(f"[{tag}] {suffix} {part} tower vs encode_{part} on demo data: max abs diff {diff:.2e}")
        assert got.shape == ref.shape == (len(x), dim)
        assert diff <= 1e-4 * max(1.0, float(np.abs(ref).max()))
