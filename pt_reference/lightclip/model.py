"""LightCLIP model (PyTorch reference), twin of ``ms_models.lightclip.model`` (see there)."""
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ..backbones.clip import QuickGELU, TextTransformer, clip_layer_norm, eot_pool
from ..registry import create_model
from . import losses

IMAGE_ENCODERS = ("tiny_cnn", "mobilenetv2_100", "efficientnet_lite0")


class TinyCNN(nn.Module):
    """4 x (conv3x3, BN, ReLU), strides 2, 2, 1, 2: (B, 3, H, W) -> (B, width*4, H/8, W/8)."""

    def __init__(self, width=32):
        super().__init__()
        chans = (3, width, width * 2, width * 4, width * 4)
        layers = []
        for i, stride in enumerate((2, 2, 1, 2)):
            conv = nn.Conv2d(chans[i], chans[i + 1], 3, stride=stride, padding=1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            layers += [conv, nn.BatchNorm2d(chans[i + 1], eps=1e-5, momentum=0.1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.num_features = chans[-1]

    def forward_features(self, x):
        return self.body(x)


def build_image_encoder(name, tiny_width=32):
    if name == "tiny_cnn":
        return TinyCNN(tiny_width)
    if name not in IMAGE_ENCODERS:
        raise ValueError(f"model.image_encoder={name!r}; expected one of {IMAGE_ENCODERS}")
    return create_model(name, num_classes=0)


class FusionBlock(nn.Module):
    """Text tokens (B, L, W) cross-attend to image tokens (B, M, D) (see the MindSpore twin)."""

    def __init__(self, width, heads, image_dim):
        super().__init__()
        self.ln_q = clip_layer_norm(width)
        self.img_proj = nn.Linear(image_dim, width)
        self.ln_kv = clip_layer_norm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x, image_tokens):
        kv = self.ln_kv(self.img_proj(image_tokens))
        return x + self.attn(self.ln_q(x), kv, kv, need_weights=False)[0]


class LightCLIP(nn.Module):
    """See ``ms_models.lightclip.model.LightCLIP``."""

    def __init__(self, image_encoder="tiny_cnn", tiny_width=32, embed_dim=512, vocab_size=49408, text_length=77,
                 text_width=512, text_layers=6, text_heads=8, logit_scale_init=1 / 0.07, logit_scale_max=100.0,
                 soft_label_mode="uniform", soft_label_temperature=0.1, token_loss="cos", token_temperature=0.1,
                 mlm_attention="bidirectional", fusion_every=1, loss_weights=(1.0, 0.5, 0.5)):
        super().__init__()
        self.visual = build_image_encoder(image_encoder, tiny_width)
        feat = self.visual.num_features
        self.patch_proj = nn.Linear(feat, embed_dim)
        self.global_proj = nn.Linear(feat, embed_dim)
        self.text = TextTransformer(vocab_size, text_length, text_width, text_layers, text_heads, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(logit_scale_init))))
        self.log_scale_max = float(np.log(logit_scale_max))
        self.soft_label_mode, self.soft_label_temperature = soft_label_mode, soft_label_temperature
        self.token_loss, self.token_temperature = token_loss, token_temperature
        self.weights = tuple(float(w) for w in loss_weights)
        self.use_mlm = self.weights[2] > 0
        self.bidirectional = mlm_attention == "bidirectional"
        self.fusion_after = tuple(i for i in range(text_layers) if fusion_every and (i + 1) % fusion_every == 0)
        if self.use_mlm:
            self.fusion = nn.ModuleList([FusionBlock(text_width, text_heads, embed_dim) for _ in self.fusion_after])
            self.mlm_head = nn.Sequential(OrderedDict([("dense", nn.Linear(text_width, text_width)),
                                                       ("gelu", QuickGELU()),
                                                       ("ln", clip_layer_norm(text_width)),
                                                       ("fc", nn.Linear(text_width, vocab_size))]))

    def scale(self):
        return self.logit_scale.clamp(max=self.log_scale_max).exp()

    def image_tokens(self, images):
        fmap = self.visual.forward_features(images)
        flat = fmap.flatten(2).transpose(1, 2)
        return self.patch_proj(flat), self.global_proj(fmap.mean((2, 3)))

    def encode_image(self, images):
        return self.image_tokens(images)[1]

    def encode_text(self, ids):
        return self.text.encode_text(ids)

    def token_similarity(self, images, ids):
        return losses.token_similarity(self.text.forward_tokens(ids), self.image_tokens(images)[0])

    def mlm_logits(self, mlm_ids, patch_tokens):
        t = self.text
        n = mlm_ids.shape[1]
        x = t.token_embedding(mlm_ids) + t.positional_embedding[:n]
        mask = None if self.bidirectional else t.attn_mask[:n, :n]
        k = 0
        for i, block in enumerate(t.transformer.resblocks):
            x = block(x, mask)
            if i in self.fusion_after:
                x = self.fusion[k](x, patch_tokens)
                k += 1
        return self.mlm_head(t.ln_final(x))

    def forward(self, images, ids, alpha, mlm_ids, mlm_labels, match):
        patches, img = self.image_tokens(images)
        words = self.text.forward_tokens(ids)
        txt = eot_pool(words, ids.long())
        zero = images.new_zeros(())
        inst = tok = mlm = zero
        if self.weights[0] > 0:
            inst = losses.soft_infonce_loss(img, txt, self.scale(), alpha[0], self.soft_label_mode,
                                            self.soft_label_temperature)
        if self.weights[1] > 0:
            tok = losses.token_alignment_loss(words, patches, match, self.token_loss, self.token_temperature)
        if self.use_mlm:
            mlm = losses.mlm_loss(self.mlm_logits(mlm_ids, patches), mlm_labels)
        return inst, tok, mlm
