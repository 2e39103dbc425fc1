"""CFAM on an IRRA-style CLIP base (PyTorch reference); names and numerics as in
``ms_models.cfam.model`` (see its docstring for the reconstruction and the options)."""
from collections import OrderedDict

import torch
from torch import nn

from pt_reference.backbones.clip import CLIP, QuickGELU, Transformer, clip_layer_norm, eot_pool

from . import losses as L

LOSS_ORDER = ("sdm", "itc", "id", "mlm", "gran", "match")
MASK_VALUE = -1e9


def _mlp(width, ratio=4):
    return nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * ratio)), ("gelu", QuickGELU()),
                                      ("c_proj", nn.Linear(width * ratio, width))]))


def _mha(width, heads):
    attn = nn.MultiheadAttention(width, heads, batch_first=True)
    nn.init.normal_(attn.in_proj_weight, std=width ** -0.5)
    nn.init.normal_(attn.out_proj.weight, std=width ** -0.5)
    return attn


def _additive(pad_mask):
    """(B, M) bool -> (B, M) float additive mask (the MindSpore twin adds the same value)."""
    return None if pad_mask is None else pad_mask.float() * MASK_VALUE


class GranularityDecoderLayer(nn.Module):
    """Pre-norm decoder layer on queries (B, K, D) with memory (B, M, D) -> (B, K, D)."""

    def __init__(self, width, heads):
        super().__init__()
        self.self_attn = _mha(width, heads)
        self.ln_1 = clip_layer_norm(width)
        self.cross_attn = _mha(width, heads)
        self.ln_2 = clip_layer_norm(width)
        self.ln_mem = clip_layer_norm(width)
        self.mlp = _mlp(width)
        self.ln_3 = clip_layer_norm(width)

    def forward(self, x, memory, memory_pad_mask=None):
        h = self.ln_1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        mem = self.ln_mem(memory)
        x = x + self.cross_attn(self.ln_2(x), mem, mem, need_weights=False,
                                key_padding_mask=_additive(memory_pad_mask))[0]
        return x + self.mlp(self.ln_3(x))


class GranularityDecoder(nn.Module):
    """Shared granularity decoder: (K, D) queries, (B, M, D) memory, (B, M) pad mask -> (B, K, D)."""

    def __init__(self, width, layers, heads):
        super().__init__()
        self.layers = nn.ModuleList([GranularityDecoderLayer(width, heads) for _ in range(layers)])
        self.ln_post = clip_layer_norm(width)

    def forward(self, queries, memory, memory_pad_mask=None):
        x = queries.unsqueeze(0).expand(memory.shape[0], -1, -1).to(memory.dtype)
        for layer in self.layers:
            x = layer(x, memory, memory_pad_mask)
        return self.ln_post(x)


class MatchingHead(nn.Module):
    """Text tokens cross-attend to image tokens, one FFN, fused EOT token -> (N, 2) logits."""

    def __init__(self, width, heads):
        super().__init__()
        self.ln_q = clip_layer_norm(width)
        self.ln_kv = clip_layer_norm(width)
        self.cross_attn = _mha(width, heads)
        self.ln_2 = clip_layer_norm(width)
        self.mlp = _mlp(width)
        self.ln_post = clip_layer_norm(width)
        self.classifier = nn.Linear(width, 2)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, text_tokens, text_ids, image_tokens):
        kv = self.ln_kv(image_tokens)
        x = text_tokens + self.cross_attn(self.ln_q(text_tokens), kv, kv, need_weights=False)[0]
        x = x + self.mlp(self.ln_2(x))
        return self.classifier(self.ln_post(eot_pool(x, text_ids)))


class CFAM(nn.Module):
    """CFAM / IRRA retrieval model (arguments as the MindSpore twin)."""

    def __init__(self, num_classes, clip_kwargs=None, temperature=0.02, losses=("sdm", "id"), mlm_depth=4,
                 mlm_heads=None, num_queries=16, decoder_layers=2, decoder_heads=None, granularity_loss="sdm",
                 granularity_pool="mean", decoder_text_mask=True, match_heads=None):
        super().__init__()
        unknown = [n for n in losses if n not in LOSS_ORDER]
        if unknown:
            raise ValueError(f"CFAM losses {unknown} are unknown; choose from {LOSS_ORDER}")
        if granularity_loss not in ("sdm", "itc") or granularity_pool not in ("mean", "per_query"):
            raise ValueError(f"granularity_loss must be sdm|itc and granularity_pool mean|per_query, got "
                             f"{granularity_loss!r}, {granularity_pool!r}")
        self.loss_names = tuple(n for n in LOSS_ORDER if n in losses)
        self.base_model = CLIP(**(clip_kwargs or {}))
        self.base_model.logit_scale.requires_grad_(False)  # CLIP's learnable scale is unused (fixed 1/tau)
        d = self.base_model.text_projection.shape[1]
        self.embed_dim = d
        self.logit_scale = 1.0 / float(temperature)
        self.granularity_loss, self.granularity_pool = granularity_loss, granularity_pool
        self.decoder_text_mask = bool(decoder_text_mask)
        heads = max(1, d // 64)
        if "id" in self.loss_names:
            self.classifier = nn.Linear(d, num_classes)
            nn.init.normal_(self.classifier.weight, std=0.001)
            nn.init.zeros_(self.classifier.bias)
        if "mlm" in self.loss_names:
            vocab = self.base_model.vocab_size
            proj_std = d ** -0.5 * (2 * mlm_depth) ** -0.5
            self.cross_attn = _mha(d, mlm_heads or heads)
            nn.init.normal_(self.cross_attn.out_proj.weight, std=proj_std)
            self.cross_modal_transformer = Transformer(d, mlm_depth, mlm_heads or heads)
            self.ln_pre_t = clip_layer_norm(d)
            self.ln_pre_i = clip_layer_norm(d)
            self.ln_post = clip_layer_norm(d)
            self.mlm_head = nn.Sequential(OrderedDict([("dense", nn.Linear(d, d)), ("gelu", QuickGELU()),
                                                       ("ln", clip_layer_norm(d)), ("fc", nn.Linear(d, vocab))]))
            nn.init.normal_(self.mlm_head.dense.weight, std=(2 * d) ** -0.5)
            nn.init.normal_(self.mlm_head.fc.weight, std=proj_std)
        if "gran" in self.loss_names:
            self.granularity_queries = nn.Parameter(torch.randn(num_queries, d) * d ** -0.5)
            self.granularity_decoder = GranularityDecoder(d, decoder_layers, decoder_heads or heads)
        if "match" in self.loss_names:
            self.match_head = MatchingHead(d, match_heads or heads)

    def encode_image(self, images):
        """(B, 3, H, W) -> (B, D) class-token feature (unnormalised)."""
        return self.base_model.forward_tokens_image(images)[:, 0]

    def encode_text(self, caption_ids):
        """(B, L) ids -> (B, D) EOT feature (unnormalised)."""
        return self.base_model.encode_text(caption_ids)

    def cross_former(self, q, kv):
        k = self.ln_pre_i(kv)
        x = self.cross_attn(self.ln_pre_t(q), k, k, need_weights=False)[0]
        return self.ln_post(self.cross_modal_transformer(x))

    def granularity_features(self, image_tokens, text_tokens, caption_ids):
        pad = (caption_ids == 0) if self.decoder_text_mask else None
        g_v = self.granularity_decoder(self.granularity_queries, image_tokens)
        g_t = self.granularity_decoder(self.granularity_queries, text_tokens, pad)
        return g_v, g_t

    def _align(self, a, b, pids):
        if self.granularity_loss == "sdm":
            return L.sdm_loss(a, b, pids, self.logit_scale)
        return L.itc_loss(a, b, self.logit_scale)

    def granularity_alignment(self, g_v, g_t, pids):
        if self.granularity_pool == "mean":
            return self._align(g_v.mean(dim=1), g_t.mean(dim=1), pids)
        return sum(self._align(g_v[:, k], g_t[:, k], pids) for k in range(g_v.shape[1])) / g_v.shape[1]

    def match_logits(self, image_tokens, text_tokens, caption_ids, i_feats, t_feats, pids):
        neg_text, neg_image = L.hard_negatives(i_feats, t_feats, pids)
        txt = torch.cat([text_tokens, text_tokens[neg_text], text_tokens], dim=0)
        ids = torch.cat([caption_ids, caption_ids[neg_text], caption_ids], dim=0)
        img = torch.cat([image_tokens, image_tokens, image_tokens[neg_image]], dim=0)
        b = caption_ids.shape[0]
        labels = torch.cat([torch.ones(b, dtype=torch.long), torch.zeros(2 * b, dtype=torch.long)])
        return self.match_head(txt, ids, img), labels

    def forward(self, images, caption_ids, pids, mlm_ids=None, mlm_labels=None):
        image_tokens = self.base_model.forward_tokens_image(images)
        text_tokens = self.base_model.forward_tokens(caption_ids)
        i_feats = image_tokens[:, 0]
        t_feats = eot_pool(text_tokens, caption_ids)
        out = []
        if "sdm" in self.loss_names:
            out.append(L.sdm_loss(i_feats, t_feats, pids, self.logit_scale))
        if "itc" in self.loss_names:
            out.append(L.itc_loss(i_feats, t_feats, self.logit_scale))
        if "id" in self.loss_names:
            out.append(L.id_loss(self.classifier(i_feats), self.classifier(t_feats), pids))
        if "mlm" in self.loss_names:
            x = self.mlm_head(self.cross_former(self.base_model.forward_tokens(mlm_ids), image_tokens))
            out.append(L.masked_lm_loss(x.reshape(-1, x.shape[-1]), mlm_labels.reshape(-1)))
        if "gran" in self.loss_names:
            g_v, g_t = self.granularity_features(image_tokens, text_tokens, caption_ids)
            out.append(self.granularity_alignment(g_v, g_t, pids))
        if "match" in self.loss_names:
            logits, labels = self.match_logits(image_tokens, text_tokens, caption_ids, i_feats, t_feats, pids)
            out.append(L._ce(logits, labels))
        return tuple(out)
