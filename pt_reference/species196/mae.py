"""Masked autoencoder ViT (PyTorch twin of ``ms_models.species196.mae``; names and numerics of the
official ``models_mae.py``, built from timm's ``PatchEmbed`` and ``Block`` with LayerNorm eps 1e-6).
Masking is an input (``ids_keep``, ``ids_restore``, ``mask`` drawn in numpy)."""
from functools import partial

import numpy as np
import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from pt_reference.registry import register_model


def sincos_pos_embed(embed_dim, grid_size, cls_token=True):
    """Fixed 2-D sin-cos position embedding (see the MindSpore twin), float32 numpy."""
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
    return torch.gather(x, 1, ids.long().unsqueeze(-1).expand(-1, -1, x.shape[2]))


class MaskedAutoencoderViT(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0, norm_pix_loss=False):
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.patch_size, self.in_chans = patch_size, in_chans
        self.grid = self.patch_embed.grid_size[0]
        n = self.patch_embed.num_patches
        self.num_patches = n
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(embed_dim, self.grid))[None],
                                      requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                                     for _ in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(decoder_embed_dim, self.grid))[None],
                                              requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True,
                                                   norm_layer=norm_layer) for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans)
        self.norm_pix_loss = bool(norm_pix_loss)
        self._init_weights()

    def _init_weights(self):
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def patchify(self, imgs):
        p, g, b = self.patch_size, self.grid, imgs.shape[0]
        x = imgs.reshape(b, self.in_chans, g, p, g, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, g * g, p * p * self.in_chans)

    def _run(self, blocks, x):
        for blk in blocks:
            x = blk(x)
        return x

    def forward_encoder(self, imgs, ids_keep):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        x = _gather_tokens(x, ids_keep)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        return self.norm(self._run(self.blocks, torch.cat([cls, x], dim=1)))

    def forward_decoder(self, latent, ids_restore):
        x = self.decoder_embed(latent)
        b, n_vis, d = x.shape
        mask_tokens = self.mask_token.expand(b, ids_restore.shape[1] + 1 - n_vis, d)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = _gather_tokens(x_, ids_restore)
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        x = self.decoder_norm(self._run(self.decoder_blocks, x))
        return self.decoder_pred(x)[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def encode(self, imgs):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        return self.norm(self._run(self.blocks, torch.cat([cls, x], dim=1)))[:, 0]

    def forward(self, imgs, ids_keep, ids_restore, mask):
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
    return _mae("base", **kwargs)


@register_model
def mae_vit_large_patch16(**kwargs):
    return _mae("large", **kwargs)


@register_model
def mae_vit_huge_patch14(**kwargs):
    return _mae("huge", **kwargs)
