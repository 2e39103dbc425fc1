"""OFA-KD in deploy form: the distilled student backbone alone (``scripts/export.py``, ``ascend/infer.py``).

The teacher and the branch projectors are training-only and are not exported: the graph is the
student of ``model.student`` (timm names, ``model.student_kwargs``) mapping float32 (B, 3, S, S)
normalised images (S = ``data.img_size``, the eval crop) to float32 (B, num_classes) logits, the
same tensor as ``OFADistiller.predict``. A distiller checkpoint (``student.backbone.*``,
``teacher.*``, ``projector.*``) or a student-only weight file loads strictly.

Formats (tests/test_ofakd_export.py): MINDIR for every student; ONNX for CNN students (ResNet,
MobileNetV2 use ReLU/ReLU6); students with exact (erf) GELU -- ViT/DeiT, Swin, Mixer/ResMLP,
ConvNeXt -- stop at MindSpore's ``Erf`` op, which has no ONNX converter in MindSpore 2.10
(``scripts/export.py --format ONNX`` exits 2 naming ``Erf``; Swin's shifted-window slicing and
concatenation convert, only the GELU does not).
"""
from pathlib import Path

from ms_models.registry import create_model

STUDENT_PREFIX = "student.backbone."
TRAINING_ONLY = ("teacher.", "projector.")
# classifier weight of each supported student family: ResNet, Swin/ConvNeXt, ViT/Mixer/ResMLP, MobileNetV2
HEAD_KEYS = ("fc.weight", "head.fc.weight", "head.weight", "classifier.weight")


def student_weights(weights):
    """The student's parameters in ``weights``: the ``student.backbone.*`` names of a distiller
    checkpoint with the prefix dropped (teacher and projectors left out), or a student-only dict as it is."""
    sub = {k[len(STUDENT_PREFIX):]: v for k, v in weights.items() if k.startswith(STUDENT_PREFIX)}
    if sub:
        other = sorted(k for k in weights if not k.startswith((STUDENT_PREFIX,) + TRAINING_ONLY))
        if other:
            raise ValueError(f"ofakd export: the distiller weights hold keys outside student.backbone.*, teacher.*, "
                             f"projector.*: {other[:6]}{' ...' if len(other) > 6 else ''}")
        return sub
    if any(k.startswith(TRAINING_ONLY) for k in weights):
        raise ValueError("ofakd export: the weights hold teacher/projector parameters but no 'student.backbone.*' "
                         "ones; pass an OFA-KD training checkpoint or a student weight file")
    return weights


def data_num_classes(cfg):
    """``model.num_classes``, else the number of class folders of the training split (as the task)."""
    if cfg.model.num_classes:
        return int(cfg.model.num_classes)
    from common.data.classification import ImageFolder
    if cfg.data.root is None:
        from common.data.demo_classification import demo_classification_root
        root = demo_classification_root()
    else:
        root = Path(str(cfg.data.root)).expanduser()
    return len(ImageFolder(root / cfg.data.train_split).classes)


def fixed_input_side(net):
    """The input side a token model is built for (ViT/Mixer ``img_size``, Swin grid x patch), else None."""
    pe = getattr(net, "patch_embed", None) or getattr(net, "stem", None)
    if pe is None:
        return None
    if hasattr(pe, "img_size"):
        return int(pe.img_size[0])
    if hasattr(pe, "grid_size") and hasattr(pe, "proj"):
        return int(pe.grid_size[0]) * int(pe.proj.kernel_size[0])
    return None


def build_export_net(cfg, weights=None):
    """``(student, (3, S, S), dynamic_batch_ok=True)`` for ``cfg`` with ``weights`` (MindSpore names:
    a distiller checkpoint or the student alone) loaded strictly; ``None``: a seeded student.

    The class count comes from the student's classifier in ``weights``, else ``model.num_classes``,
    else the class folders of ``data.root`` (as the task). Every shape but the batch is static, and a
    MINDIR with an open batch axis runs for every supported student family (measured at batches 2
    and 5 for ResNet, MobileNetV2, ConvNeXt, DeiT, Mixer, ResMLP and Swin with shifted windows, max
    diff 0; tests/test_ofakd_export.py keeps ResNet-18 and Swin).
    """
    from ms_models.utils.weights import load_numpy_state

    m = cfg.model
    state = student_weights(weights) if weights is not None else None
    heads = [k for k in HEAD_KEYS if state is not None and k in state]
    num_classes = int(state[heads[0]].shape[0]) if heads else data_num_classes(cfg)
    net = create_model(m.student, num_classes=num_classes, **(m.student_kwargs or {}))
    if state is not None:
        load_numpy_state(net, state, strict=True)
    net.set_train(False)
    size = int(cfg.data.img_size)
    side = fixed_input_side(net)
    if side is not None and side != size:
        raise ValueError(f"data.img_size={size} but the student {m.student} is built for {side} px inputs; "
                         f"set --set data.img_size={side} (or model.student_kwargs.img_size)")
    return net, (3, size, size), True


def infer_overrides(cfg, shape):
    """Config overrides for evaluating an exported student (``ascend/infer.py``): the task still
    builds its distiller, but the teacher is only a seeded placeholder there (no checkpoint to find,
    no CE pre-training of the demo teacher), the student initialisation file is not read, and no
    branch projectors are built; the exported graph alone produces the logits."""
    del shape  # the eval crop is data.img_size, recorded with the export's overrides
    return ["model.teacher_checkpoint=null", "teacher.pretrain_epochs=0", "teacher.allow_random=true",
            "model.student_checkpoint=null", "distill.mode=ce"]
