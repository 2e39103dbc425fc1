"""ViT / DeiT (patch 16), the MindSpore twin of timm's ``VisionTransformer`` and
``VisionTransformerDistilled`` (same parameter names, shapes and numerics).

Names: cls_token, [dist_token], pos_embed, patch_embed.proj, blocks.i.{norm1, attn.qkv, attn.proj,
norm2, mlp.fc1, mlp.fc2}, norm, head, [head_dist].  LayerNorm eps 1e-6, exact (erf) GELU, class-token
pooling.  Input (B, 3, img_size, img_size) float32.
"""
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, TruncatedNormal, initializer

from ..layers import Attention, DropPath, Mlp, PatchEmbed, dense, layer_norm, take_indices
from ..registry import register_model


class Block(nn.Cell):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); (B, N, C) -> (B, N, C)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)

    def construct(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Cell):
    """timm VisionTransformer with a class token, learned position embedding and token pooling.

    Args:
        img_size, patch_size, in_chans: input geometry (the position embedding is sized for img_size).
        num_classes: classifier width; 0 gives no classifier.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer shape.
        drop_path_rate: stochastic depth, rising linearly from 0 over the blocks.
    """

    num_prefix_tokens = 1

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768, depth=12,
                 num_heads=12, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = Parameter(initializer(Normal(1e-6), (1, 1, embed_dim)), name="cls_token")
        num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.pos_embed = Parameter(initializer(TruncatedNormal(0.02), (1, num_tokens, embed_dim)), name="pos_embed")
        rates = np.linspace(0, drop_path_rate, depth)
        self.blocks = nn.SequentialCell([Block(embed_dim, num_heads, mlp_ratio, qkv_bias, float(r)) for r in rates])
        self.norm = layer_norm(embed_dim)
        self.head = dense(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _prefix_tokens(self, batch):
        return [ops.broadcast_to(self.cls_token, (batch, -1, -1))]

    def _pos_embed(self, x):
        """Prepend the prefix tokens, then add the position embedding (timm's default order)."""
        return ops.concat(self._prefix_tokens(x.shape[0]) + [x], axis=1) + self.pos_embed

    def forward_features(self, x):
        """(B, C, H, W) -> normalised tokens (B, prefix + patches, embed_dim)."""
        return self.norm(self.blocks(self._pos_embed(self.patch_embed(x))))

    def forward_head(self, x, pre_logits=False):
        """Class token (B, embed_dim) and, unless ``pre_logits``, the classifier."""
        x = x[:, 0]
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x, indices=None, return_prefix_tokens=False, norm=False, output_fmt="NCHW",
                              intermediates_only=False):
        """timm ``forward_intermediates``: the output of selected blocks.

        Prefix tokens are split off; ``output_fmt='NCHW'`` gives (B, C, H/p, W/p) maps, ``'NLC'``
        (B, patches, C) tokens; ``norm`` applies the final norm to each.  With
        ``return_prefix_tokens`` each entry is ``(spatial, prefix)``.  Returns
        ``(norm(final tokens), [features])`` or, with ``intermediates_only``, the list.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        taken, _ = take_indices(len(self.blocks), indices)
        b = x.shape[0]
        x = self._pos_embed(self.patch_embed(x))
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in taken:
                outs.append(self.norm(x) if norm else x)
        p = self.num_prefix_tokens
        prefix = [y[:, :p] for y in outs]
        outs = [y[:, p:] for y in outs]
        if output_fmt == "NCHW":
            h, w = self.patch_embed.grid_size
            outs = [y.reshape(b, h, w, -1).transpose(0, 3, 1, 2) for y in outs]
        if return_prefix_tokens:
            outs = list(zip(outs, prefix))
        return outs if intermediates_only else (self.norm(x), outs)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


class VisionTransformerDistilled(VisionTransformer):
    """DeiT with a distillation token and head (timm ``VisionTransformerDistilled``).

    ``construct`` returns the mean of the two heads, except in training with
    ``set_distilled_training(True)``, where it returns ``(class_logits, dist_logits)``.
    """

    num_prefix_tokens = 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dist_token = Parameter(initializer(TruncatedNormal(0.02), (1, 1, self.embed_dim)), name="dist_token")
        self.head_dist = dense(self.embed_dim, self.num_classes) if self.num_classes > 0 else nn.Identity()
        self.distilled_training = False

    def set_distilled_training(self, enable=True):
        self.distilled_training = enable

    def _prefix_tokens(self, batch):
        return [ops.broadcast_to(self.cls_token, (batch, -1, -1)), ops.broadcast_to(self.dist_token, (batch, -1, -1))]

    def forward_head(self, x, pre_logits=False):
        x, x_dist = x[:, 0], x[:, 1]
        if pre_logits:
            return (x + x_dist) / 2
        x, x_dist = self.head(x), self.head_dist(x_dist)
        if self.distilled_training and self.training:
            return x, x_dist
        return (x + x_dist) / 2


_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}


def _create(size, distilled=False, **kwargs):
    embed_dim, num_heads = _SIZES[size]
    cls = VisionTransformerDistilled if distilled else VisionTransformer
    return cls(patch_size=16, embed_dim=embed_dim, depth=12, num_heads=num_heads, **kwargs)


@register_model
def vit_tiny_patch16_224(**kwargs):
    """ViT-Ti/16 (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("tiny", **kwargs)


@register_model
def vit_small_patch16_224(**kwargs):
    """ViT-S/16 (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("small", **kwargs)


@register_model
def vit_base_patch16_224(**kwargs):
    """ViT-B/16 (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("base", **kwargs)


@register_model
def deit_tiny_patch16_224(**kwargs):
    """DeiT-Ti/16 (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("tiny", **kwargs)


@register_model
def deit_small_patch16_224(**kwargs):
    """DeiT-S/16 (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("small", **kwargs)


@register_model
def deit_base_patch16_224(**kwargs):
    """DeiT-B/16 (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("base", **kwargs)


@register_model
def deit_tiny_distilled_patch16_224(**kwargs):
    """DeiT-Ti/16 with distillation token (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("tiny", distilled=True, **kwargs)


@register_model
def deit_small_distilled_patch16_224(**kwargs):
    """DeiT-S/16 with distillation token (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("small", distilled=True, **kwargs)


@register_model
def deit_base_distilled_patch16_224(**kwargs):
    """DeiT-B/16 with distillation token (kwargs: num_classes, drop_path_rate, img_size, in_chans)."""
    return _create("base", distilled=True, **kwargs)
