"""CLIP encoders (MindSpore) with OpenAI CLIP parameter names, so an OpenAI checkpoint converts with
the generic rules (LayerNorm weight/bias -> gamma/beta, Embedding weight -> embedding_table) and
loads strictly.

Names (OpenAI ``clip/model.py``):

- image tower ``visual``: conv1 (no bias), class_embedding (W,), positional_embedding (1 + gh*gw, W),
  ln_pre, transformer.resblocks.i.{ln_1, attn.in_proj_weight (3W, W), attn.in_proj_bias (3W,),
  attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_post, proj (W, D).
- text tower (top level of ``CLIP``): token_embedding, positional_embedding (L, W), transformer,
  ln_final, text_projection (W, D).
- ``CLIP``: both, plus logit_scale ().

Numerics: LayerNorm eps 1e-5 and QuickGELU ``x * sigmoid(1.702 x)`` written out; causal additive
mask in the text tower; text feature at the EOT position (argmax of the token ids). Non-square
inputs (ViT-B/16 at 384x128 -> 24x8 patches) take an interpolated position table, see
``common.weights.openai_clip.resize_visual_positional_embedding``.
"""
from collections import OrderedDict

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from ..registry import register_model

LN_EPS = 1e-5
MASK_VALUE = -1e9  # additive mask value; exp() underflows to exactly 0 in float32, as -inf does


def clip_layer_norm(dim):
    """CLIP LayerNorm over the last axis, eps 1e-5 (MindSpore's default would be 1e-7)."""
    return nn.LayerNorm((dim,), epsilon=LN_EPS)


class QuickGELU(nn.Cell):
    """``x * sigmoid(1.702 * x)`` (OpenAI CLIP's activation), any shape."""

    def construct(self, x):
        return x * ops.sigmoid(1.702 * x)


class MultiheadAttention(nn.Cell):
    """torch ``nn.MultiheadAttention`` numerics and names (in_proj_weight, in_proj_bias, out_proj),
    batch-first.

    ``construct(query (B, Lq, E), key (B, Lk, E), value (B, Lk, E), attn_mask=None,
    key_padding_mask=None) -> (B, Lq, E)``. ``attn_mask``: additive float (Lq, Lk);
    ``key_padding_mask``: (B, Lk), 1 / True where a key must be ignored.
    """

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.in_proj_weight = Parameter(initializer(Normal(embed_dim ** -0.5), (3 * embed_dim, embed_dim)),
                                        name="in_proj_weight")
        self.in_proj_bias = Parameter(initializer("zeros", (3 * embed_dim,)), name="in_proj_bias")
        self.out_proj = nn.Dense(embed_dim, embed_dim, weight_init=Normal(embed_dim ** -0.5), bias_init="zeros")

    def _project(self, x, index):
        e = self.embed_dim
        w = self.in_proj_weight[index * e:(index + 1) * e]
        b = self.in_proj_bias[index * e:(index + 1) * e]
        y = ops.matmul(x, w.T) + b
        bsz, n = x.shape[0], x.shape[1]
        return y.reshape(bsz, n, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def construct(self, query, key, value, attn_mask=None, key_padding_mask=None):
        q = self._project(query, 0) * self.scale
        k = self._project(key, 1)
        v = self._project(value, 2)
        scores = ops.matmul(q, k.swapaxes(-2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        if key_padding_mask is not None:
            pad = key_padding_mask.astype(scores.dtype).reshape(scores.shape[0], 1, 1, -1)
            scores = scores + pad * MASK_VALUE
        out = ops.matmul(ops.softmax(scores, axis=-1), v)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(b, n, self.embed_dim))


class ResidualAttentionBlock(nn.Cell):
    """Pre-norm CLIP block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); (B, N, W) -> (B, N, W)."""

    def __init__(self, d_model, n_head, mlp_ratio=4):
        super().__init__()
        self.attn = MultiheadAttention(d_model, n_head)
        self.ln_1 = clip_layer_norm(d_model)
        self.mlp = nn.SequentialCell(OrderedDict([("c_fc", nn.Dense(d_model, d_model * mlp_ratio)),
                                                  ("gelu", QuickGELU()),
                                                  ("c_proj", nn.Dense(d_model * mlp_ratio, d_model))]))
        self.ln_2 = clip_layer_norm(d_model)

    def construct(self, x, attn_mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Cell):
    """``layers`` CLIP blocks of width ``width`` with ``heads`` heads; (B, N, W) -> (B, N, W).

    ``attn_mask`` (N, N) additive, or None (full attention)."""

    def __init__(self, width, layers, heads):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.CellList([ResidualAttentionBlock(width, heads) for _ in range(layers)])
        init_transformer(self)

    def construct(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


def _normal_(param, std):
    param.set_data(initializer(Normal(std), param.shape, param.dtype))


def init_transformer(transformer):
    """OpenAI CLIP initialisation of a ``Transformer``'s weights (normal, depth-scaled projections)."""
    width, layers = transformer.width, transformer.layers
    proj_std = width ** -0.5 * (2 * layers) ** -0.5
    for block in transformer.resblocks:
        _normal_(block.attn.in_proj_weight, width ** -0.5)
        _normal_(block.attn.out_proj.weight, proj_std)
        _normal_(block.mlp.c_fc.weight, (2 * width) ** -0.5)
        _normal_(block.mlp.c_proj.weight, proj_std)


def _pair(size):
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)


class VisionTransformer(nn.Cell):
    """CLIP image encoder (OpenAI ``VisionTransformer``) for square or rectangular inputs.

    Args:
        input_resolution: int or (H, W) in pixels, multiples of ``patch_size`` (ViT-B/16 person
            retrieval: (384, 128) -> 24x8 patches).
        patch_size, width, layers, heads: ViT-B/16 is 16, 768, 12, 12.
        output_dim: joint embedding width D (512 for ViT-B/16).

    ``forward_tokens(x (B, 3, H, W)) -> (B, 1 + gh*gw, D)``: every token after ln_post and proj
    (IRRA's variant; token 0 is the class token). ``construct(x) -> (B, D)``: the class token.
    """

    def __init__(self, input_resolution=224, patch_size=16, width=768, layers=12, heads=12, output_dim=512):
        super().__init__()
        self.input_resolution = _pair(input_resolution)
        h, w = self.input_resolution
        if h % patch_size or w % patch_size:
            raise ValueError(f"VisionTransformer input_resolution {self.input_resolution} is not a multiple of "
                             f"patch_size {patch_size}")
        self.grid_size = (h // patch_size, w // patch_size)
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, pad_mode="valid", has_bias=False)
        scale = width ** -0.5
        self.class_embedding = Parameter(initializer(Normal(scale), (width,)), name="class_embedding")
        self.positional_embedding = Parameter(
            initializer(Normal(scale), (self.grid_size[0] * self.grid_size[1] + 1, width)), name="positional_embedding")
        self.ln_pre = clip_layer_norm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = clip_layer_norm(width)
        self.proj = Parameter(initializer(Normal(scale), (width, output_dim)), name="proj")

    def forward_tokens(self, x):
        x = self.conv1(x)
        b, c = x.shape[0], x.shape[1]
        x = x.reshape(b, c, -1).transpose(0, 2, 1)
        cls = ops.broadcast_to(self.class_embedding.reshape(1, 1, c), (b, 1, c)).astype(x.dtype)
        x = ops.concat((cls, x), axis=1) + self.positional_embedding.astype(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return ops.matmul(self.ln_post(x), self.proj)

    def construct(self, x):
        return self.forward_tokens(x)[:, 0]


def causal_mask(length):
    """(L, L) additive float32 mask: 0 on and below the diagonal, ``MASK_VALUE`` above."""
    return Tensor(np.triu(np.full((length, length), MASK_VALUE, np.float32), 1))


def eot_pool(tokens, text):
    """Features at each sequence's EOT position (argmax of the ids): (B, L, D), (B, L) -> (B, D).

    A one-hot product, not a gather, so it traces with static shapes; zeros add exactly."""
    onehot = ops.one_hot(ops.argmax(text, dim=-1), text.shape[1], Tensor(1.0, tokens.dtype),
                         Tensor(0.0, tokens.dtype))
    return ops.bmm(onehot.expand_dims(1), tokens).squeeze(1)


def eot_select(tokens, ids, positions):
    """``eot_pool`` without the OneHot op (onnxruntime has no OneHot kernel
    for int32 indices): the one-hot row is ``positions == argmax(ids)``; same product, same values."""
    eot = ops.argmax(ids, dim=-1).astype(ms.int32).expand_dims(-1)
    onehot = ops.equal(positions[:, :ids.shape[1]], eot).astype(tokens.dtype)
    return ops.bmm(onehot.expand_dims(1), tokens).squeeze(1)


class TextTransformer(nn.Cell):
    """CLIP text encoder with OpenAI's top-level names (token_embedding, positional_embedding,
    transformer, ln_final, text_projection), causal attention.

    Args:
        vocab_size: 49408 for the CLIP BPE vocabulary.
        context_length: L, the position table length (77 in CLIP; longer for UFine captions).
        width, layers, heads: 512, 12, 8 in CLIP; a "shortened" tower takes smaller values.
        output_dim: joint embedding width D.

    ``forward_tokens(text (B, n) int, n <= L) -> (B, n, D)`` every position after ln_final and
    text_projection; ``encode_text(text) -> (B, D)`` the EOT position.
    """

    def __init__(self, vocab_size=49408, context_length=77, width=512, layers=12, heads=8, output_dim=512):
        super().__init__()
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, width, embedding_table=Normal(0.02))
        self.positional_embedding = Parameter(initializer(Normal(0.01), (context_length, width)),
                                              name="positional_embedding")
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = clip_layer_norm(width)
        self.text_projection = Parameter(initializer(Normal(width ** -0.5), (width, output_dim)),
                                         name="text_projection")
        self.attn_mask = causal_mask(context_length)

    def forward_tokens(self, text):
        n = text.shape[1]
        x = self.token_embedding(text) + self.positional_embedding[:n]
        x = self.transformer(x, self.attn_mask[:n, :n])
        return ops.matmul(self.ln_final(x), self.text_projection)

    def encode_text(self, text):
        return eot_pool(self.forward_tokens(text), text)

    def construct(self, text):
        return self.encode_text(text)


class CLIP(TextTransformer):
    """OpenAI CLIP (ViT image tower): ``visual`` + the text tower at top level + ``logit_scale``.

    ``encode_image(x) -> (B, D)``, ``encode_text(text) -> (B, D)``;
    ``construct(image, text) -> (logits_per_image (B, T), logits_per_text (T, B))``.
    ``forward_tokens_image``/``forward_tokens`` give all tokens (see the towers).
    """

    def __init__(self, embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                 context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                 transformer_layers=12, vision_heads=None):
        super().__init__(vocab_size, context_length, transformer_width, transformer_layers, transformer_heads,
                         embed_dim)
        self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers,
                                        vision_heads or max(1, vision_width // 64), embed_dim)
        self.logit_scale = Parameter(Tensor(np.log(1 / 0.07), ms.float32), name="logit_scale")

    def encode_image(self, image):
        return self.visual(image)

    def forward_tokens_image(self, image):
        return self.visual.forward_tokens(image)

    def construct(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / ops.norm(img, dim=-1, keepdim=True)
        txt = txt / ops.norm(txt, dim=-1, keepdim=True)
        logits = ops.exp(self.logit_scale) * ops.matmul(img, txt.T)
        return logits, logits.T


@register_model
def clip_vit_b16(**kwargs):
    """OpenAI CLIP ViT-B/16 (embed 512; image 768x12 at 224; text 512x12x8, L=77).

    kwargs override the CLIP arguments, e.g. ``image_resolution=(384, 128)``, ``context_length=168``."""
    return CLIP(**{"embed_dim": 512, "image_resolution": 224, "vision_layers": 12, "vision_width": 768,
                   "vision_patch_size": 16, "context_length": 77, "vocab_size": 49408, "transformer_width": 512,
                   "transformer_heads": 8, "transformer_layers": 12, **kwargs})
