"""Gold-YOLO in deploy form for export and inference.

RepVGG branches are reparameterised into one 3x3 conv, Conv+BN pairs are fused, and adaptive pooling
is built as fixed average pooling (kernel = stride = the integer ratio, the official export form;
identical outputs whenever the input side is a multiple of 64). The exported graph maps a float32
(B, 3, S, S) RGB image in [0, 1] to (B, A, 5 + nc) rows [cx, cy, w, h, 1, class scores] in input
pixels, before NMS.
"""
from ms_models.registry import create_model

from .reparam import switch_to_deploy
from .task import model_kwargs


def num_classes_of(weights, default):
    """Class count read from the first classification conv of a weight dict (any head type)."""
    for key in ("detect.cls_preds.0.weight", "detect.cls_preds_af.0.weight"):
        if weights is not None and key in weights:
            return int(weights[key].shape[0])
    return default


def build_export_net(cfg, weights=None):
    """Deploy-form network for ``cfg`` with ``weights`` (MindSpore names) loaded before fusion.

    Returns ``(net, input_shape_chw, dynamic_batch_ok)``. ``dynamic_batch_ok`` is True: the graph
    reads only the static H and W (pooling kernels, bilinear-resize matrices, anchor points are
    constants) and carries the batch axis through, so a MINDIR with an open batch runs.
    """
    from ms_models.utils.weights import load_numpy_state

    nc = num_classes_of(weights, cfg.model.num_classes or 80)
    kwargs = dict(model_kwargs(cfg, nc), pool_mode="fixed_avgpool")
    net = create_model(f"gold_yolo_{cfg.model.variant}", **kwargs)
    if weights is not None:
        load_numpy_state(net, weights, strict=True)
    net.set_train(False)
    switch_to_deploy(net)
    size = int(cfg.eval.img_size or cfg.data.img_size)
    if size % 64:
        raise ValueError(f"export needs an input side that is a multiple of 64 (fixed pooling ratios), got {size}; "
                         "set --set data.img_size=... or eval.img_size=...")
    return net, (3, size, size), True


def infer_overrides(cfg, chw):
    """Config overrides that make the eval pipeline feed a static ``chw`` graph (``ascend/infer.py``):
    'rect' batches have per-batch shapes, so they become 'square' letterboxes of the graph's side."""
    side = int(chw[-1])
    extra = []
    if cfg.eval.mode == "rect":
        extra.append("eval.mode=square")
    if int(cfg.eval.img_size or cfg.data.img_size) != side:
        extra.append(f"eval.img_size={side}")
    return extra
