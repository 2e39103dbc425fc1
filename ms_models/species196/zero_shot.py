"""MindSpore side of the zero-shot track: a CLIP-style adapter over registered image-text models
and a tiny image-text model used to test the scorer.

``RegistryImageTextModel`` implements ``common.zero_shot.ImageTextModel`` for any registered
MindSpore model that offers ``encode_image(images (N, 3, H, W)) -> (N, D)`` and
``encode_text(tokens int32 (M, L)) -> (M, D)`` (OpenAI CLIP's method names). Tokens come from a
``tokenizer`` callable ``(list of str, context_length) -> int array`` (default: the byte tokenizer
of ``common.zero_shot``). The model is imported only when the zero-shot track asks for it.
"""
import importlib

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from common.zero_shot import ImageTextModel, byte_tokenize
from ms_models.layers import dense
from ms_models.registry import create_model, register_model


def load_tokenizer(spec):
    """``None`` -> the byte tokenizer; ``'module:callable'`` -> that callable."""
    if not spec:
        return byte_tokenize
    module, _, attr = str(spec).partition(":")
    if not attr:
        raise ValueError(f"zero_shot.tokenizer must look like module:callable, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


class RegistryImageTextModel(ImageTextModel):
    """Adapter: numpy in, numpy out, over ``create_model(name, **kwargs)`` (or a given network)."""

    def __init__(self, name=None, kwargs=None, tokenizer=None, context_length=77, network=None, weights=None):
        self.net = network if network is not None else create_model(name, **(kwargs or {}))
        for method in ("encode_image", "encode_text"):
            if not callable(getattr(self.net, method, None)):
                raise TypeError(f"zero-shot model {name or type(self.net).__name__} has no {method}() method "
                                f"(an image-text model must offer encode_image and encode_text)")
        if weights:
            from common.weights import read_weights
            from ms_models.engine.checkpoint import read_eval_weights
            from ms_models.utils.weights import load_numpy_state
            state = read_eval_weights(weights) if str(weights).endswith(".ckpt") else read_weights(weights)
            load_numpy_state(self.net, state)
        self.net.set_train(False)
        self.tokenizer = load_tokenizer(tokenizer)
        self.context_length = int(context_length)

    def image_features(self, images):
        return self.net.encode_image(ms.Tensor(np.asarray(images, np.float32))).asnumpy()

    def text_features(self, texts):
        tokens = np.asarray(self.tokenizer(list(texts), self.context_length))
        return self.net.encode_text(ms.Tensor(tokens.astype(np.int32))).asnumpy()


class TinyImageText(nn.Cell):
    """A small two-tower image-text model (conv image tower, byte-embedding bag text tower), both
    projected to ``embed_dim``. Untrained it is only a test vehicle for the zero-shot scorer."""

    def __init__(self, embed_dim=32, width=16, vocab_size=259):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2, pad_mode="pad", padding=1, has_bias=True)
        self.image_proj = dense(width, embed_dim)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.text_proj = dense(width, embed_dim)

    def encode_image(self, images):
        return self.image_proj(ops.relu(self.conv(images)).mean(axis=(2, 3)))

    def encode_text(self, tokens):
        emb = self.token_embedding(tokens)
        valid = (tokens > 0).astype(emb.dtype).expand_dims(-1)
        return self.text_proj((emb * valid).sum(axis=1) / ops.maximum(valid.sum(axis=1), 1.0))


@register_model
def species196_tiny_clip(embed_dim=32, width=16, vocab_size=259):
    """Tiny image-text model for testing the zero-shot track (not a CLIP replica)."""
    return TinyImageText(embed_dim, width, vocab_size)
