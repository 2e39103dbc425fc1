"""Species196 classifiers in deploy form (``scripts/export.py``, ``ascend/infer.py``).

The classifier tracks deploy their classifier (``task.build_classifier``): supervised and fixmatch
the ``model.name`` network (``species196_cnn``, ResNet, ViT/DeiT), linear_probe and finetune the ViT
with the MAE encoder's shape (linear_probe with its BatchNorm + linear head). The graph maps float32
(B, 3, S, S) normalised eval crops (S = ``data.img_size``, after ``track_settings``) to float32
(B, K) logits, K the classes of the label map. The MAE pre-training and zero-shot tracks have no
classifier to export (an error says so).

Formats (tests/test_species196_export.py): MINDIR for every classifier, with an open batch axis;
ONNX for the CNNs (``species196_cnn``, ResNet); the ViTs stop at MindSpore's ``Erf`` op (exact
GELU), which has no ONNX converter in MindSpore 2.10 (``scripts/export.py --format ONNX`` exits 2
naming ``Erf``).
"""
import copy

from common.data.species196_tracks import CLASSIFIER_TRACKS, apply_track_settings

from .task import build_classifier

# classifier weight: linear-probe head (BatchNorm, Linear), ViT / species196_cnn, ResNet
HEAD_KEYS = ("head.1.weight", "head.weight", "fc.weight")


def track_config(cfg):
    """A copy of ``cfg`` with its ``track_settings`` applied (as the task does); classifier tracks only."""
    cfg = apply_track_settings(copy.deepcopy(cfg))
    if cfg.track not in CLASSIFIER_TRACKS:
        raise ValueError(f"species196 export: track '{cfg.track}' has no classifier to export; choose one of "
                         f"{', '.join(CLASSIFIER_TRACKS)} (--set track=...)")
    return cfg


def build_export_net(cfg, weights=None):
    """``(classifier, (3, S, S), dynamic_batch_ok=True)`` for the track of ``cfg`` with ``weights``
    (MindSpore names, e.g. a training checkpoint of that track) loaded strictly; ``None``: as
    initialised (no MAE encoder is read).

    The class count comes from the classifier weights, else ``model.num_classes``, else the label
    map of the data (as the task). Every shape but the batch is static; a MINDIR with an open batch
    axis runs (tests/test_species196_export.py: the linear-probe ViT at batches 2 and 3).
    """
    from ms_models.utils.weights import load_numpy_state

    cfg = track_config(cfg)
    heads = [k for k in HEAD_KEYS if weights is not None and k in weights]
    if heads:
        num_classes = int(weights[heads[0]].shape[0])
    elif cfg.model.num_classes:
        num_classes = int(cfg.model.num_classes)
    else:
        from common.data.species196_tracks import Species196Data
        num_classes = Species196Data(cfg).num_classes
    net = build_classifier(cfg, cfg.track, num_classes)
    if weights is not None:
        load_numpy_state(net, weights, strict=True)
    net.set_train(False)
    size = int(cfg.data.img_size)
    pe = getattr(net, "patch_embed", None)
    if pe is not None and int(pe.img_size[0]) != size:
        raise ValueError(f"data.img_size={size} but the classifier {cfg.model.name} is built for {pe.img_size[0]} px; "
                         f"set --set data.img_size={pe.img_size[0]} (or model.kwargs.img_size)")
    return net, (3, size, size), True


def infer_overrides(cfg, shape):
    """Config overrides for evaluating an exported classifier (``ascend/infer.py``): the task's own
    ViT is only a placeholder there, so linear_probe / finetune do not look for an MAE checkpoint."""
    del shape  # the eval crop is data.img_size, recorded with the export's overrides
    return ["probe.pretrained=null"] if cfg.track in ("linear_probe", "finetune") else []
