"""Masked autoencoder ViT (He et al., MAE) for Species196 self-supervised pre-training.

Names follow the official ``models_mae.py`` (twin: ``pt_reference.species196.mae``): patch_embed.proj,
cls_token, pos_embed (fixed 2-D sin-cos, not trained), blocks.i (the foundation's timm-style
``Block``, LayerNorm eps 1e-6, erf GELU), norm, decoder_embed, mask_token, decoder_pos_embed (fixed),
decoder_blocks.i, decoder_norm, decoder_pred. The encoder part has exactly the names of the
foundation's ``VisionTransformer``, so a pre-trained encoder loads into the classifier used by
linear probing and fine-tuning.

Random masking is drawn in numpy (``common.data.species196_augment.mae_masks``) and fed as inputs:
``ids_keep`` int32 (B, K), ``ids_restore`` int32 (B, L), ``mask`` float32 (B, L) with 1 = removed,
so the compiled graph has static shapes and both frameworks mask the same patches.
"""
import math

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, Uniform, XavierUniform, initializer

from ms_models.backbones.vit import Block
from ms_models.layers import PatchEmbed, dense, layer_norm
from ms_models.registry import register_model


def sincos_pos_embed(embed_dim, grid_size, cls_token=True):
    """Fixed 2-D sin-cos position embedding (L [+1], embed_dim) float32 (MAE ``get_2d_sincos_pos_embed``):
    half the channels encode the column (w) coordinate, half the row (h); a zero row for the class token."""
    if embed_dim % 4:
        raise ValueError(f"sin-cos position embedding needs embed_dim divisible by 4, got {embed_dim}")
    gh, gw = np.meshgrid(np.arange(grid_size, dtype=np.float64), np.arange(grid_size, dtype=np.float64),
                         indexing="ij")

    def one_dim(pos):
        omega = 1.0 / 10000 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4.0))
        out = pos.reshape(-1)[:, None] * omega[None, :]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate([one_dim(gw), one_dim(gh)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, embed_dim)), emb], axis=0)
    return emb.astype(np.float32)


def _gather_tokens(x, ids):
    """x (B, L, D), ids int (B, K) -> (B, K, D) rows ``x[b, ids[b, k]]``."""
    b, k = ids.shape
    index = ops.broadcast_to(ids.astype(ms.int32).expand_dims(-1), (b, k, x.shape[2]))
    return ops.gather_elements(x, 1, index)


class MaskedAutoencoderViT(nn.Cell):
    """MAE with a ViT encoder and a lightweight transformer decoder.

    ``construct(images, ids_keep, ids_restore, mask)`` -> scalar loss: the mean squared error over
    the removed patches of the (optionally per-patch normalised) pixels.
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0, norm_pix_loss=False):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.patch_size, self.in_chans = patch_size, in_chans
        self.grid = self.patch_embed.grid_size[0]
        n = self.patch_embed.num_patches
        self.num_patches = n
        self.cls_token = Parameter(initializer(Normal(0.02), (1, 1, embed_dim)), name="cls_token")
        self.pos_embed = Parameter(Tensor(sincos_pos_embed(embed_dim, self.grid)[None]), name="pos_embed",
                                   requires_grad=False)
        self.blocks = nn.SequentialCell([Block(embed_dim, num_heads, mlp_ratio, True) for _ in range(depth)])
        self.norm = layer_norm(embed_dim)
        self.decoder_embed = dense(embed_dim, decoder_embed_dim)
        self.mask_token = Parameter(initializer(Normal(0.02), (1, 1, decoder_embed_dim)), name="mask_token")
        self.decoder_pos_embed = Parameter(Tensor(sincos_pos_embed(decoder_embed_dim, self.grid)[None]),
                                           name="decoder_pos_embed", requires_grad=False)
        self.decoder_blocks = nn.SequentialCell([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, True)
                                                 for _ in range(decoder_depth)])
        self.decoder_norm = layer_norm(decoder_embed_dim)
        self.decoder_pred = dense(decoder_embed_dim, patch_size ** 2 * in_chans)
        self.norm_pix_loss = bool(norm_pix_loss)
        self._init_weights()

    def _init_weights(self):
        """Official initialisation: xavier-uniform linear weights (patch projection as a 2-D matrix),
        zero biases, LayerNorm 1/0, tokens N(0, 0.02)."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Dense):
                cell.weight.set_data(initializer(XavierUniform(), cell.weight.shape, cell.weight.dtype))
                if cell.bias is not None:
                    cell.bias.set_data(initializer("zeros", cell.bias.shape, cell.bias.dtype))
        w = self.patch_embed.proj.weight
        fan_out, fan_in = w.shape[0], int(np.prod(w.shape[1:]))
        w.set_data(initializer(Uniform(math.sqrt(6.0 / (fan_in + fan_out))), w.shape, w.dtype))

    def patchify(self, imgs):
        """(B, C, H, W) -> (B, L, p * p * C), patch pixels ordered (row, column, channel)."""
        p, g, b = self.patch_size, self.grid, imgs.shape[0]
        x = imgs.reshape(b, self.in_chans, g, p, g, p).transpose(0, 2, 4, 3, 5, 1)
        return x.reshape(b, g * g, p * p * self.in_chans)

    def forward_encoder(self, imgs, ids_keep):
        """Visible tokens (B, 1 + K, D) after the encoder and its final norm."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        x = _gather_tokens(x, ids_keep)
        cls = ops.broadcast_to(self.cls_token + self.pos_embed[:, :1, :], (x.shape[0], -1, -1))
        x = ops.concat([cls, x], axis=1)
        return self.norm(self.blocks(x))

    def forward_decoder(self, latent, ids_restore):
        """Pixel predictions (B, L, p * p * C) for every patch."""
        x = self.decoder_embed(latent)
        b, n_vis, d = x.shape
        mask_tokens = ops.broadcast_to(self.mask_token, (b, ids_restore.shape[1] + 1 - n_vis, d))
        x_ = ops.concat([x[:, 1:, :], mask_tokens], axis=1)
        x_ = _gather_tokens(x_, ids_restore)
        x = ops.concat([x[:, :1, :], x_], axis=1) + self.decoder_pos_embed
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x)[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        """Mean over removed patches of the per-patch mean squared error (per-patch normalised
        targets with ``norm_pix_loss``: mean and unbiased variance over the patch, eps 1e-6)."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(axis=-1, keep_dims=True)
            var = ((target - mean) ** 2).sum(axis=-1, keepdims=True) / (target.shape[-1] - 1)
            target = (target - mean) / ops.sqrt(var + 1.0e-6)
        loss = ((pred - target) ** 2).mean(axis=-1)
        return (loss * mask).sum() / mask.sum()

    def encode(self, imgs):
        """Class token (B, D) of the encoder on all patches (no masking): features for k-NN eval."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        cls = ops.broadcast_to(self.cls_token + self.pos_embed[:, :1, :], (x.shape[0], -1, -1))
        return self.norm(self.blocks(ops.concat([cls, x], axis=1)))[:, 0]

    def construct(self, imgs, ids_keep, ids_restore, mask):
        latent = self.forward_encoder(imgs, ids_keep)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask)


_VARIANTS = {"base": (16, 768, 12, 12), "large": (16, 1024, 24, 16), "huge": (14, 1280, 32, 16)}


def _mae(size, **kwargs):
    p, d, depth, heads = _VARIANTS[size]
    kw = dict(patch_size=p, embed_dim=d, depth=depth, num_heads=heads, decoder_embed_dim=512, decoder_depth=8,
              decoder_num_heads=16, mlp_ratio=4.0)
    kw.update(kwargs)
    return MaskedAutoencoderViT(**kw)


@register_model
def mae_vit_base_patch16(**kwargs):
    """MAE ViT-B/16, decoder 512-d x 8 (kwargs override any shape, img_size, norm_pix_loss)."""
    return _mae("base", **kwargs)


@register_model
def mae_vit_large_patch16(**kwargs):
    """MAE ViT-L/16, decoder 512-d x 8."""
    return _mae("large", **kwargs)


@register_model
def mae_vit_huge_patch14(**kwargs):
    """MAE ViT-H/14, decoder 512-d x 8."""
    return _mae("huge", **kwargs)
