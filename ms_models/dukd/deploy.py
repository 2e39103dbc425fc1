"""DUKD in inference form for export (``scripts/export.py``) and ``ascend/infer.py``.

The deployed network is the student SR network of the config (``model``: EDSR, RCAN or SwinIR);
the teacher and the upcycling training machinery are training-only and not part of the graph.
The exported graph maps a float32 (B, 3, T, T) RGB LR tile in [0, 1] to the (B, 3, sT, sT) SR tile
(s = ``data.scale``), T being ``eval.tile`` (or ``data.lr_patch`` when the config evaluates whole
images). ``ascend/infer.py`` then runs the tiled protocol of ``DUKDTask.evaluate_with`` around it
(``infer_overrides`` sets ``eval.tile`` to the graph's side).

ONNX: EDSR and RCAN export. SwinIR's exact GELU uses ``Erf``, for which MindSpore 2.10 has no ONNX
converter: with ``export.gelu: exact`` (default) ``scripts/export.py`` exits 2 naming it;
``--set export.gelu=erf_free`` exports GELU with a polynomial erf (``ErfFreeGELU``, |error| <= 1.5e-7)
and SwinIR then exports to ONNX.
"""

from ms_models.layers.erf_free import swap_gelu
from ms_models.registry import create_model


def apply_export_options(net, cfg):
    """``export.gelu``: 'exact' keeps the network as trained; 'erf_free' swaps in ErfFreeGELU."""
    mode = cfg.export.gelu
    if mode not in ("exact", "erf_free"):
        raise ValueError(f"config key 'export.gelu' = {mode!r}; choices: exact, erf_free")
    return swap_gelu(net) if mode == "erf_free" else 0


def export_tile(cfg, window=1):
    """LR tile side of the exported graph: ``eval.tile``, else ``data.lr_patch``."""
    tile = int(cfg.eval.get("tile") or cfg.data.lr_patch)
    if tile % window:
        key = "eval.tile" if cfg.eval.get("tile") else "data.lr_patch (used because eval.tile is null)"
        raise ValueError(f"config key {key} = {tile} must be a multiple of the model's window_size {window} "
                         "for export; set --set eval.tile=<multiple>")
    return tile


def build_export_net(cfg, weights=None):
    """Eval-mode student of ``cfg.model`` with ``weights`` (MindSpore names) loaded strictly.

    Returns ``(net, (3, T, T), dynamic_batch_ok=True)``: the networks are convolutions, window
    attention over static spatial shapes and pixel shuffle, so the batch axis stays open (a MINDIR
    with an open batch is run at two batch sizes by the tests).
    """
    from ms_models.utils.weights import load_numpy_state

    net = create_model(cfg.model.name, **(cfg.model.kwargs or {}))
    if weights is not None:
        weights = {k: v for k, v in weights.items() if not k.startswith("teacher.")}
        load_numpy_state(net, weights, strict=True)
    apply_export_options(net, cfg)
    net.set_train(False)
    window = int(getattr(net, "window_size", 1))
    tile = export_tile(cfg, window)
    overlap = int(cfg.eval.get("tile_overlap") or 0)
    if overlap >= tile:
        raise ValueError(f"config key 'eval.tile_overlap' = {overlap} must be smaller than the export tile {tile}")
    return net, (3, tile, tile), True


def infer_overrides(cfg, chw):
    """Overrides that make the eval pipeline feed the static (3, T, T) graph: ``eval.tile=T``, and
    ``dukd.method=scratch`` so that no teacher is built (the export holds the student only; the
    student metrics, PSNR/SSIM-Y per set, are unchanged), and ``data.train_hr=null`` so that the
    training folders need not exist where inference runs."""
    side = int(chw[-1])
    extra = []
    if int(cfg.eval.get("tile") or 0) != side:
        extra.append(f"eval.tile={side}")
    if cfg.dukd.method != "scratch":
        extra.append("dukd.method=scratch")
    if cfg.data.train_hr:
        extra.append("data.train_hr=null")   # evaluation only: no DIV2K training folders needed
    return extra
