"""Exact-form GELU without the Erf op, for ONNX export (MindSpore 2.10 has no ONNX converter for Erf).

``swap_gelu(net)`` replaces every ``nn.GELU`` child of an inference network; used by
``scripts/export.py --erf-free-gelu`` and the DUKD/IFT ``export.gelu: erf_free`` option.
"""
from mindspore import nn, ops

# Abramowitz & Stegun 7.1.26: erf(z) = 1 - (a1 t + ... + a5 t^5) exp(-z^2), t = 1 / (1 + p z), z >= 0,
# |error| <= 1.5e-7
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


class ErfFreeGELU(nn.Cell):
    """Exact-form GELU ``0.5 x (1 + erf(x / sqrt 2))`` with erf from Abramowitz & Stegun 7.1.26
    (abs error <= 1.5e-7; measured against float64: 6.4e-7 on [-10, 10], MindSpore's own erf GELU
    4.5e-7), built from abs/exp/div only: ``export.gelu: erf_free`` puts it in the export graph
    because MindSpore 2.10 has no ONNX converter for ``Erf``
    (``scripts/export.py --erf-free-gelu`` does it for any family). Not the tanh approximation."""

    def construct(self, x):
        z = ops.abs(x) * 0.7071067811865476
        t = ops.div(ops.ones_like(z), z * _AS_P + 1.0)     # not 1 / (...): Reciprocal has no ONNX converter
        poly = t * (_AS_A[0] + t * (_AS_A[1] + t * (_AS_A[2] + t * (_AS_A[3] + t * _AS_A[4]))))
        return 0.5 * x + 0.5 * ops.abs(x) * (1.0 - poly * ops.exp(-z * z))


def swap_gelu(net):
    """Replace every ``nn.GELU`` child of ``net`` by :class:`ErfFreeGELU`; returns how many."""
    swapped = 0
    for _, cell in list(net.cells_and_names()):
        for attr, child in list(cell.name_cells().items()):
            if isinstance(child, nn.GELU):
                setattr(cell, attr, ErfFreeGELU())
                swapped += 1
    return swapped
