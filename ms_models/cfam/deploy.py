"""CFAM in deploy form: two graphs, the CLIP image tower and the CLIP text tower (global features).

Inference (``CFAMTask.evaluate``) uses the global features only: the image class token after
``ln_post`` and ``proj`` and the text EOT token after ``ln_final`` and ``text_projection``; cosine
similarity, ranking and the metrics run outside the graphs (``RetrievalData.evaluate``). The ID
classifier, the MLM branch (cross-modal transformer, MLM head), the granularity queries and decoder,
the matching head and CLIP's unused ``logit_scale`` are training-only and not in the exported graphs.

- ``image``: float32 (B, 3, H, W) CLIP-normalised images, ``(H, W) = data.img_size`` -> (B, D)
  unnormalised class-token features.
- ``text``: int32 (B, L) token ids ``input_ids`` (SOT ... EOT, zero padded; ``L = model.text_length``,
  ids in [0, ``model.vocab_size``)) -> (B, D) unnormalised features at the EOT position (the argmax
  of the ids, as in CLIP). The causal mask is a constant of the graph.
"""
import numpy as np
from mindspore import Tensor, nn

from common.cfam_config import model_kwargs

from ms_models.backbones.clip import TextTransformer, eot_select, VisionTransformer
from ms_models.export import image_text_infer_overrides

# Parameters of a trained CFAM that inference never reads (training-only modules).
TRAINING_ONLY = ("classifier.", "cross_attn.", "cross_modal_transformer.", "ln_pre_t.", "ln_pre_i.", "ln_post.",
                 "mlm_head.", "granularity_queries", "granularity_decoder.", "match_head.", "base_model.logit_scale")
BASE = "base_model."


def clip_kwargs(cfg):
    """The ``CLIP`` arguments of the trained model (``common.cfam_config.model_kwargs``), so the towers
    are built exactly as inside ``CFAM.base_model``."""
    return model_kwargs(cfg, 1)["clip_kwargs"]


class ImageTower(nn.Cell):
    """``visual`` of CFAM's CLIP base: (B, 3, H, W) -> (B, D) class-token feature."""

    def __init__(self, cfg):
        super().__init__()
        c = clip_kwargs(cfg)
        self.visual = VisionTransformer(c["image_resolution"], c["vision_patch_size"], c["vision_width"],
                                        c["vision_layers"], c["vision_heads"] or max(1, c["vision_width"] // 64),
                                        c["embed_dim"])

    def construct(self, images):
        # = self.visual(images); the class token is taken here, at the top scope: MindSpore 2.10's ONNX
        # converter drops the Slice of a shrinking StridedSlice inside the VisionTransformer scope
        # (onnxruntime: "Node input '...StridedSlice-op0__reshape' is not a graph input")
        return self.visual.forward_tokens(images)[:, 0]


class TextTower(nn.Cell):
    """The text tower of CFAM's CLIP base: int (B, L) ids -> (B, D) EOT feature."""

    def __init__(self, cfg):
        super().__init__()
        c = clip_kwargs(cfg)
        self.text = TextTransformer(c["vocab_size"], c["context_length"], c["transformer_width"],
                                    c["transformer_layers"], c["transformer_heads"], c["embed_dim"])
        self.positions = Tensor(np.arange(int(c["context_length"]), dtype=np.int32).reshape(1, -1))

    def construct(self, input_ids):
        return eot_select(self.text.forward_tokens(input_ids), input_ids, self.positions)


def split_weights(weights):
    """A trained CFAM's ``{name: array}`` -> (image tower state, text tower state) in the towers' names.

    Training-only parameters (``TRAINING_ONLY``) are dropped; any other name outside ``base_model.``
    is an error (the file is not a CFAM checkpoint)."""
    image, text, unknown = {}, {}, []
    for name, value in weights.items():
        if name.startswith(TRAINING_ONLY):
            continue
        if not name.startswith(BASE):
            unknown.append(name)
        elif name.startswith(BASE + "visual."):
            image[name[len(BASE):]] = value
        else:
            text["text." + name[len(BASE):]] = value
    if unknown:
        raise ValueError(f"CFAM weights: {len(unknown)} name(s) belong to no CFAM module, e.g. {unknown[:3]}; "
                         "expected 'base_model.*' (CLIP towers) and the training-only heads")
    return image, text


def build_export_parts(cfg, weights=None):
    """``{"image": (net, (3, H, W), True), "text": (net, [input_ids spec], True)}`` for ``cfg``.

    ``weights`` (MindSpore names of the full CFAM, e.g. ``read_eval_weights(best.ckpt)``) load
    strictly into each tower after the training-only modules are dropped; ``None`` keeps the seeded
    initialisation. Both graphs read only static H, W and L, so a MINDIR with an open batch axis runs
    (tests/test_cfam_export.py, batches 3 and 5).
    """
    from ms_models.utils.weights import load_numpy_state

    image, text = ImageTower(cfg), TextTower(cfg)
    if weights is not None:
        image_state, text_state = split_weights(weights)
        load_numpy_state(image, image_state, strict=True)
        load_numpy_state(text, text_state, strict=True)
    image.set_train(False)
    text.set_train(False)
    h, w = (int(s) for s in cfg.data.img_size)
    ids = {"name": "input_ids", "shape": [int(cfg.model.text_length)], "dtype": "int32",
           "high": int(cfg.model.vocab_size)}
    return {"image": (image, (3, h, w), True), "text": (text, [ids], True)}


infer_overrides = image_text_infer_overrides
