"""MLP-Mixer, the MindSpore twin of timm's ``MlpMixer`` with ``MixerBlock`` (same names and numerics).

Names: stem.proj, blocks.i.{norm1, mlp_tokens.{fc1, fc2}, norm2, mlp_channels.{fc1, fc2}}, norm, head.
LayerNorm eps 1e-6, exact GELU, token-mean pooling.  ResMLP (``resmlp.py``) reuses the stem and the
token-mean head.  Input (B, 3, img_size, img_size) float32.
"""
from mindspore import nn, ops

from ..layers import DropPath, Mlp, PatchEmbed, dense, layer_norm, take_indices
from ..registry import register_model


class MixerBlock(nn.Cell):
    """Token mixing (an MLP across the N tokens) then channel mixing; (B, N, C) -> (B, N, C)."""

    def __init__(self, dim, seq_len, mlp_ratio=(0.5, 4.0), drop_path=0.0):
        super().__init__()
        tokens_dim, channels_dim = int(mlp_ratio[0] * dim), int(mlp_ratio[1] * dim)
        self.norm1 = layer_norm(dim, 1e-6)
        self.mlp_tokens = Mlp(seq_len, tokens_dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = layer_norm(dim, 1e-6)
        self.mlp_channels = Mlp(dim, channels_dim)

    def construct(self, x):
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).swapaxes(1, 2)).swapaxes(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class TokenMlpNet(nn.Cell):
    """Shared skeleton of timm's ``MlpMixer``: patch ``stem``, ``blocks``, ``norm``, token mean, ``head``.

    Subclasses set ``self.blocks`` and ``self.norm``.
    """

    def __init__(self, img_size, patch_size, in_chans, num_classes, embed_dim):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.stem = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.head = dense(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x):
        """(B, C, H, W) -> normalised tokens (B, patches, embed_dim)."""
        return self.norm(self.blocks(self.stem(x)))

    def forward_head(self, x, pre_logits=False):
        """Token mean (B, embed_dim) and, unless ``pre_logits``, the classifier."""
        x = ops.mean(x, 1)
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x, indices=None, norm=False, output_fmt="NCHW", intermediates_only=False):
        """timm ``forward_intermediates``: outputs of the selected blocks, (B, C, H/p, W/p) maps for
        ``output_fmt='NCHW'`` or (B, patches, C) tokens for ``'NLC'``; ``norm`` applies the final norm.
        Returns ``(norm(final tokens), [features])`` or, with ``intermediates_only``, the list."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        taken, _ = take_indices(len(self.blocks), indices)
        b = x.shape[0]
        x = self.stem(x)
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in taken:
                outs.append(self.norm(x) if norm else x)
        if output_fmt == "NCHW":
            h, w = self.stem.grid_size
            outs = [y.reshape(b, h, w, -1).transpose(0, 3, 1, 2) for y in outs]
        return outs if intermediates_only else (self.norm(x), outs)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))


class MlpMixer(TokenMlpNet):
    """timm MlpMixer (MixerBlock, LayerNorm).

    Args:
        img_size, patch_size, in_chans: input geometry.
        num_classes: classifier width; 0 gives no classifier.
        embed_dim, num_blocks, mlp_ratio: (token, channel) hidden ratios of the two MLPs.
        drop_path_rate: stochastic depth, the same rate in every block (as timm).
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=512, num_blocks=8,
                 mlp_ratio=(0.5, 4.0), drop_path_rate=0.0):
        super().__init__(img_size, patch_size, in_chans, num_classes, embed_dim)
        seq_len = self.stem.num_patches
        self.blocks = nn.SequentialCell([MixerBlock(embed_dim, seq_len, mlp_ratio, float(drop_path_rate))
                                         for _ in range(num_blocks)])
        self.norm = layer_norm(embed_dim, 1e-6)


@register_model
def mixer_s16_224(**kwargs):
    """Mixer-S/16 (kwargs: num_classes, img_size, drop_path_rate, num_blocks, embed_dim)."""
    return MlpMixer(**{"patch_size": 16, "num_blocks": 8, "embed_dim": 512, **kwargs})


@register_model
def mixer_b16_224(**kwargs):
    """Mixer-B/16 (kwargs: num_classes, img_size, drop_path_rate, num_blocks, embed_dim)."""
    return MlpMixer(**{"patch_size": 16, "num_blocks": 12, "embed_dim": 768, **kwargs})


@register_model
def mixer_l16_224(**kwargs):
    """Mixer-L/16 (kwargs: num_classes, img_size, drop_path_rate, num_blocks, embed_dim)."""
    return MlpMixer(**{"patch_size": 16, "num_blocks": 24, "embed_dim": 1024, **kwargs})
