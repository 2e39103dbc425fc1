"""Classification models in inference form for export (``scripts/export.py``, ``ascend/infer.py``)."""
from ms_models.classification.task import model_kwargs
from ms_models.registry import create_model


def build_export_net(cfg, weights=None):
    """Eval-mode network for ``cfg`` with ``weights`` (MindSpore names) loaded strictly.

    Returns ``(net, (3, S, S), dynamic_batch_ok=True)`` with S the eval crop (``data.img_size``).
    The class count comes from the classifier weights when given, else from ``model.num_classes``.
    """
    from ms_models.utils.weights import load_numpy_state

    num_classes = cfg.model.get("num_classes") or 1000
    if weights is not None:
        heads = [k for k in ("head.weight", "fc.weight") if k in weights]
        if heads:
            num_classes = int(weights[heads[0]].shape[0])
    net = create_model(cfg.model.name, **model_kwargs(cfg, num_classes))
    if weights is not None:
        load_numpy_state(net, weights, strict=True)
    net.set_train(False)
    size = int(cfg.data.img_size)
    return net, (3, size, size), True
