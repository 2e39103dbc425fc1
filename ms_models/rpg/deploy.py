"""A pruned RPG network in deploy form for export and inference.

The deploy network is the plain registered classifier (``cfg.model.name``) without masks or step
counter: pruning lives in the weights themselves as exact zeros, which MINDIR stores bit for bit.
The exported graph maps a float32 (B, 3, S, S) normalised image to (B, num_classes) logits.
"""
import numpy as np

from ms_models.registry import create_model

from .masks import strip_rpg_state


def num_classes_of(weights, default):
    """Class count read from the classifier weight ``fc.weight`` of a weight dict."""
    if weights is not None and "fc.weight" in weights:
        return int(np.shape(weights["fc.weight"])[0])
    return default


def build_export_net(cfg, weights=None):
    """Deploy network for ``cfg`` with ``weights`` (MindSpore names; masks and ``rpg_step`` dropped).

    Returns ``(net, input_shape_chw, dynamic_batch_ok)``; ``dynamic_batch_ok`` is True (convolutions,
    batch norm, global mean and a dense layer carry any batch size).
    """
    from ms_models.classification.task import model_kwargs
    from ms_models.utils.weights import load_numpy_state

    nc = num_classes_of(weights, cfg.model.num_classes or 1000)
    net = create_model(cfg.model.name, **model_kwargs(cfg, nc))
    if weights is not None:
        load_numpy_state(net, strip_rpg_state(weights), strict=True)
    net.set_train(False)
    size = int(cfg.data.img_size)
    return net, (3, size, size), True
