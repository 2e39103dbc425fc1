"""PPT model in export form: the eval-mode network of the config (trace off) with loaded weights.

The exported graph maps float32 (B, 3, S, S) normalised images to (B, num_classes) logits; the token
compression is the static-shape masked selection, so the graph has no data-dependent shape.
"""
from ms_models.registry import create_model

from .task import model_kwargs, ppt_kwargs


def num_classes_of(weights, default):
    """Classifier width read from ``head.weight`` of a weight dict."""
    if weights is not None and "head.weight" in weights:
        return int(weights["head.weight"].shape[0])
    return default


def build_export_net(cfg, weights=None):
    """``(net, (3, S, S), dynamic_batch_ok)`` for ``cfg`` with ``weights`` (MindSpore names).

    ``dynamic_batch_ok`` is True: every shape but the batch is static (token counts follow from the
    config), and a MINDIR with an open batch axis runs (tests/test_ppt_export.py, batches 2 and 3).
    """
    from ms_models.utils.weights import load_numpy_state

    nc = num_classes_of(weights, cfg.model.num_classes or 1000)
    net = create_model(cfg.model.name, **model_kwargs(cfg, nc), **ppt_kwargs(cfg))
    if weights is not None:
        load_numpy_state(net, weights, strict=True)
    net.set_train(False)
    net.set_trace(False)
    size = int(cfg.data.img_size)
    expected = net.patch_embed.img_size[0]
    if size != expected:
        raise ValueError(f"data.img_size={size} but the model {cfg.model.name} is built for {expected} px; "
                         f"set --set data.img_size={expected} (or model.kwargs.img_size)")
    return net, (3, size, size), True
