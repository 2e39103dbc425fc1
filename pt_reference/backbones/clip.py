"""CLIP encoders (PyTorch reference) with OpenAI CLIP parameter names; an OpenAI state_dict loads
with ``strict=True`` (timm has no OpenAI-named CLIP text tower, hence this module).

Names, shapes and numerics as in ``ms_models.backbones.clip`` (see its docstring): LayerNorm eps
1e-5, QuickGELU ``x * sigmoid(1.702 x)``, ``nn.MultiheadAttention`` (in_proj_weight, in_proj_bias,
out_proj), causal text mask, EOT pooling, rectangular image inputs.
"""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ..registry import register_model

LN_EPS = 1e-5
MASK_VALUE = -1e9


def clip_layer_norm(dim):
    """CLIP LayerNorm over the last axis, eps 1e-5."""
    return nn.LayerNorm(dim, eps=LN_EPS)


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 * x)``, any shape."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm CLIP block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); (B, N, W) -> (B, N, W)."""

    def __init__(self, d_model, n_head, mlp_ratio=4):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.ln_1 = clip_layer_norm(d_model)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, d_model * mlp_ratio)),
                                              ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d_model * mlp_ratio, d_model))]))
        self.ln_2 = clip_layer_norm(d_model)

    def forward(self, x, attn_mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """``layers`` CLIP blocks; (B, N, W) -> (B, N, W); ``attn_mask`` (N, N) additive or None."""

    def __init__(self, width, layers, heads):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])
        init_transformer(self)

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


def init_transformer(transformer):
    """OpenAI CLIP initialisation of a ``Transformer``'s weights (normal, depth-scaled projections)."""
    width, layers = transformer.width, transformer.layers
    proj_std = width ** -0.5 * (2 * layers) ** -0.5
    for block in transformer.resblocks:
        nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)


def _pair(size):
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)


class VisionTransformer(nn.Module):
    """CLIP image encoder for square or rectangular inputs (see the MindSpore twin for arguments).

    ``forward_tokens(x (B, 3, H, W)) -> (B, 1 + gh*gw, D)``; ``forward(x) -> (B, D)`` class token.
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
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size[0] * self.grid_size[1] + 1, width))
        self.ln_pre = clip_layer_norm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = clip_layer_norm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward_tokens(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x) @ self.proj

    def forward(self, x):
        return self.forward_tokens(x)[:, 0]


def causal_mask(length):
    """(L, L) additive float32 mask: 0 on and below the diagonal, ``MASK_VALUE`` above."""
    return torch.from_numpy(np.triu(np.full((length, length), MASK_VALUE, np.float32), 1))


def eot_pool(tokens, text):
    """Features at each sequence's EOT position (argmax of the ids): (B, L, D), (B, L) -> (B, D)."""
    return tokens[torch.arange(tokens.shape[0]), text.argmax(dim=-1)]


class TextTransformer(nn.Module):
    """CLIP text encoder with OpenAI's top-level names (see the MindSpore twin for arguments).

    ``forward_tokens(text (B, n), n <= L) -> (B, n, D)``; ``encode_text(text) -> (B, D)``.
    """

    def __init__(self, vocab_size=49408, context_length=77, width=512, layers=12, heads=8, output_dim=512):
        super().__init__()
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = clip_layer_norm(width)
        self.text_projection = nn.Parameter(torch.empty(width, output_dim))
        self.register_buffer("attn_mask", causal_mask(context_length), persistent=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward_tokens(self, text):
        n = text.shape[1]
        x = self.token_embedding(text) + self.positional_embedding[:n]
        x = self.transformer(x, self.attn_mask[:n, :n])
        return self.ln_final(x) @ self.text_projection

    def encode_text(self, text):
        return eot_pool(self.forward_tokens(text), text)

    def forward(self, text):
        return self.encode_text(text)


class CLIP(TextTransformer):
    """OpenAI CLIP (ViT image tower): ``visual`` + the text tower at top level + ``logit_scale``."""

    def __init__(self, embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                 context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                 transformer_layers=12, vision_heads=None):
        super().__init__(vocab_size, context_length, transformer_width, transformer_layers, transformer_heads,
                         embed_dim)
        self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers,
                                        vision_heads or max(1, vision_width // 64), embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def encode_image(self, image):
        return self.visual(image)

    def forward_tokens_image(self, image):
        return self.visual.forward_tokens(image)

    def forward(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()


@register_model
def clip_vit_b16(**kwargs):
    """OpenAI CLIP ViT-B/16 (embed 512; image 768x12 at 224; text 512x12x8, L=77); kwargs override."""
    return CLIP(**{"embed_dim": 512, "image_resolution": 224, "vision_layers": 12, "vision_width": 768,
                   "vision_patch_size": 16, "context_length": 77, "vocab_size": 49408, "transformer_width": 512,
                   "transformer_heads": 8, "transformer_layers": 12, **kwargs})
