"""LightCLIP in deploy form: two graphs, the lightweight image encoder and the shortened text tower.

Inference (``LightCLIPTask.evaluate``: zero-shot classification with prompt templates, image-text
retrieval) uses the global embeddings only; normalisation, prompt averaging, similarities and the
metrics run outside the graphs (``LightCLIPData.evaluate``). The patch projection (token alignment),
the fusion blocks and the MLM head (MLM branch) and the logit scale are training-only and not in the
exported graphs.

- ``image``: float32 (B, 3, H, W) normalised images (``(x / 255 - 0.45) / 0.25`` for the built-in
  set), ``(H, W) = data.img_size`` -> (B, D) unnormalised global embedding
  ``global_proj(mean over the encoder's feature map)``; encoder ``model.image_encoder`` (tiny_cnn,
  mobilenetv2_100, efficientnet_lite0), BatchNorm in inference form (running statistics).
- ``text``: int32 (B, L) token ids ``input_ids`` (SOT ... EOT, zero padded; ``L = model.text_length``;
  ids below the vocabulary size: 49408, or the compact demo vocabulary read from the weights) ->
  (B, D) unnormalised features at the EOT position (argmax of the ids). Causal mask: a constant.
"""
import numpy as np
from mindspore import Tensor, nn, ops

from common.lightclip_ops import model_kwargs

from ..backbones.clip import TextTransformer, eot_select
from ms_models.export import image_text_infer_overrides
from .model import build_image_encoder

# Parameters of a trained LightCLIP that inference never reads.
TRAINING_ONLY = ("patch_proj.", "fusion.", "mlm_head.", "logit_scale")


class PaddedConv(nn.Cell):
    """``conv`` (pad_mode 'pad', padding (top, bottom, left, right)) as an explicit zero ``Pad`` then a
    'valid' convolution with the same weight: identical values. MindSpore 2.10's ONNX converter writes
    an asymmetric Conv2D padding in the wrong order (ONNX wants (top, left, bottom, right)), so the
    EfficientNet-Lite0 TF-"SAME" convs (stride 2: (0, 1, 0, 1), (1, 2, 1, 2)) would shift and change
    shape in ONNX; ``Pad`` converts correctly."""

    def __init__(self, conv):
        super().__init__()
        top, bottom, left, right = conv.padding
        self.pad = ops.Pad(((0, 0), (0, 0), (top, bottom), (left, right)))
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, pad_mode="valid",
                              dilation=conv.dilation, group=conv.group, has_bias=False)
        self.conv.weight.set_data(conv.weight.data.copy())
        if conv.has_bias:
            raise ValueError(f"PaddedConv: {conv.weight.name} has a bias (not needed by any LightCLIP encoder)")

    def construct(self, x):
        return self.conv(self.pad(x))


def asymmetric(conv):
    pad = conv.padding
    return (conv.pad_mode == "pad" and isinstance(pad, (tuple, list)) and len(pad) == 4
            and (pad[0] != pad[1] or pad[2] != pad[3]))


def explicit_asymmetric_padding(net):
    """Replace every asymmetrically padded ``nn.Conv2d`` under ``net`` by a ``PaddedConv`` (after the
    weights are loaded; the replacement keeps each weight's name). Returns the number replaced."""
    count = 0
    for _, cell in list(net.cells_and_names()):
        for attr, child in list(cell.name_cells().items()):
            if isinstance(child, nn.Conv2d) and asymmetric(child):
                if isinstance(cell, (nn.CellList, nn.SequentialCell)):
                    raise ValueError(f"explicit_asymmetric_padding: conv {child.weight.name} sits in a "
                                     f"{type(cell).__name__}; only attribute convs are supported")
                name = child.weight.name
                setattr(cell, attr, PaddedConv(child))
                getattr(cell, attr).conv.weight.name = name  # setattr re-prefixed it with the local path only
                count += 1
    return count


class ImageTower(nn.Cell):
    """``visual`` + ``global_proj`` of LightCLIP (same names): (B, 3, H, W) -> (B, D)."""

    def __init__(self, kw):
        super().__init__()
        self.visual = build_image_encoder(kw["image_encoder"], kw["tiny_width"])
        self.global_proj = nn.Dense(self.visual.num_features, kw["embed_dim"])

    def construct(self, images):
        return self.global_proj(self.visual.forward_features(images).mean((2, 3)))


class TextTower(nn.Cell):
    """``text`` of LightCLIP (same names): int (B, L) ids -> (B, D) EOT feature."""

    def __init__(self, kw):
        super().__init__()
        self.text = TextTransformer(kw["vocab_size"], kw["text_length"], kw["text_width"], kw["text_layers"],
                                    kw["text_heads"], kw["embed_dim"])
        self.positions = Tensor(np.arange(int(kw["text_length"]), dtype=np.int32).reshape(1, -1))

    def construct(self, input_ids):
        return eot_select(self.text.forward_tokens(input_ids), input_ids, self.positions)


def split_weights(weights):
    """A trained LightCLIP's ``{name: array}`` -> (image state, text state); training-only names
    (``TRAINING_ONLY``) are dropped, any other name outside ``visual.``/``global_proj.``/``text.`` is an
    error (the file is not a LightCLIP checkpoint)."""
    image, text, unknown = {}, {}, []
    for name, value in weights.items():
        if name.startswith(TRAINING_ONLY):
            continue
        if name.startswith(("visual.", "global_proj.")):
            image[name] = value
        elif name.startswith("text."):
            text[name] = value
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"LightCLIP weights: {len(unknown)} name(s) belong to no LightCLIP module, e.g. "
                         f"{unknown[:3]}; expected visual.*, global_proj.*, text.* and the training-only "
                         f"{', '.join(TRAINING_ONLY)}")
    return image, text


def vocab_size_of(weights, cfg):
    """Rows of the token embedding in ``weights``, else the config's vocabulary (49408, or the compact
    demo vocabulary, whose size follows from the built-in captions)."""
    key = "text.token_embedding.embedding_table"
    if weights is not None and key in weights:
        return int(np.shape(weights[key])[0])
    if cfg.data.compact_vocab:
        from common.data.lightclip_shapes import LightCLIPData
        return LightCLIPData(cfg).vocab_size
    return 49408


def build_export_parts(cfg, weights=None):
    """``{"image": (net, (3, H, W), True), "text": (net, [input_ids spec], True)}`` for ``cfg``.

    ``weights`` (MindSpore names of the full LightCLIP, e.g. ``read_eval_weights(best.ckpt)``) load
    strictly into each tower after the training-only modules are dropped; ``None`` keeps the seeded
    initialisation. Both graphs read only static H, W and L (the feature-map mean and the EOT
    selection carry the batch axis through), so a MINDIR with an open batch axis runs
    (tests/test_lightclip_export.py).
    """
    from ms_models.utils.weights import load_numpy_state

    vocab = vocab_size_of(weights, cfg)
    kw = model_kwargs(cfg, vocab)
    image, text = ImageTower(kw), TextTower(kw)
    if weights is not None:
        image_state, text_state = split_weights(weights)
        load_numpy_state(image, image_state, strict=True)
        load_numpy_state(text, text_state, strict=True)
    explicit_asymmetric_padding(image)
    image.set_train(False)
    text.set_train(False)
    h, w = (int(s) for s in cfg.data.img_size)
    ids = {"name": "input_ids", "shape": [int(cfg.model.text_length)], "dtype": "int32", "high": vocab}
    return {"image": (image, (3, h, w), True), "text": (text, [ids], True)}


infer_overrides = image_text_infer_overrides
