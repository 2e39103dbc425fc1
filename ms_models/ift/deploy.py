"""IFT / HDR-Transformer in inference form for export (``scripts/export.py``) and ``ascend/infer.py``.

The exported graph is the whole fusion network (there are no training-only parts: the loss is
outside the model; the LSH rotations of FGPS are fixed buffers and go into the graph). It maps
three float32 (B, 6, T, T) exposure tiles ``x1``, ``x2`` (the reference), ``x3`` -- each the
HDR-domain image L^2.2/t and the LDR image L stacked in ``data.input_order`` -- to the linear HDR
tile (B, 3, T, T) in (0, 1), T being ``eval.tile``. ``ascend/infer.py`` runs the tiled test
protocol of ``IFTTask.evaluate_with`` around it (``infer_overrides`` sets ``eval.tile`` to T).

ONNX: the exact GELU of the transformer MLPs uses ``Erf``, for which MindSpore 2.10 has no ONNX
converter, so with ``export.gelu: exact`` (default) ``scripts/export.py`` exits 2 naming it.
``--set export.gelu=erf_free`` exports GELU with a polynomial erf (``ErfFreeGELU``, |error| <= 1.5e-7)
and the ``exact`` and ``none`` FGPS backends then export to ONNX. The ``lsh`` backend does not run
in onnxruntime: MindSpore's converter names the k input of every Sort -> TopK node 'k', so its
sorts of different lengths (2N tokens, 3 chunk_size n_hashes candidates) share one k (docs/ift.md).
"""

from common.data.hdr_task import model_kwargs
from ms_models.layers.erf_free import swap_gelu
from ms_models.registry import create_model


def apply_export_options(net, cfg):
    """``export.gelu``: 'exact' keeps the network as trained; 'erf_free' swaps in ErfFreeGELU."""
    mode = cfg.export.gelu
    if mode not in ("exact", "erf_free"):
        raise ValueError(f"config key 'export.gelu' = {mode!r}; choices: exact, erf_free")
    return swap_gelu(net) if mode == "erf_free" else 0

INPUT_NAMES = ("x1", "x2", "x3")


def build_export_net(cfg, weights=None):
    """Eval-mode network of ``cfg.model`` with ``weights`` (MindSpore names) loaded strictly.

    Returns ``(net, [x1, x2, x3 input specs (6, T, T) float32], dynamic_batch_ok=True)``: every
    reshape of the model (patches, windows, FGPS token grids, LSH chunks) is built from the static
    H and W and carries the batch axis through, so a MINDIR with an open batch runs (tested at two
    batch sizes).
    """
    from ms_models.utils.weights import load_numpy_state

    if cfg.export.gelu == "erf_free" and cfg.model.name == "ift" and cfg.model.fgps_backend == "lsh":
        raise ValueError("export.gelu=erf_free is the ONNX form, and an ONNX graph of model.fgps_backend=lsh does not "
                         "run: MindSpore 2.10 converts every Sort to a TopK whose k initializer is named 'k', so the "
                         "LSH sorts of different lengths share one k and onnxruntime rejects the TopK. Export MINDIR "
                         "(export.gelu=exact), or use fgps_backend=exact|none for ONNX")
    net = create_model(cfg.model.name, **model_kwargs(cfg))
    if weights is not None:
        load_numpy_state(net, weights, strict=True)
    apply_export_options(net, cfg)
    net.set_train(False)
    tile = int(cfg.eval.tile)
    if tile % net.size_multiple:
        raise ValueError(f"config key 'eval.tile' = {tile} must be a multiple of {net.size_multiple} "
                         "(model.window_size and model.patch_size) for export")
    return net, [{"name": n, "shape": [6, tile, tile], "dtype": "float32"} for n in INPUT_NAMES], True


def infer_overrides(cfg, shape):
    """``eval.tile`` = the side of the graph's static (6, T, T) inputs."""
    side = int(shape[-1])
    return [] if int(cfg.eval.tile) == side else [f"eval.tile={side}"]
