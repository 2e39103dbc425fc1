"""CFAM (UFineBench, arXiv 2312.03441) on an IRRA-style CLIP base, MindSpore.

CFAM's code is not public; this follows the spec's reconstruction (docs/cfam.md), every CFAM
specific part a constructor option:

- ``base_model``: CLIP ViT image tower + text tower (``ms_models.backbones.clip.CLIP``), OpenAI names.
  Global features: image class token, text EOT token (used alone at inference).
- ``classifier``: ID head, Linear(D, num_classes), N(0, 0.001^2), bias 0 (IRRA).
- MLM (IRRA): ``cross_attn`` (text queries -> image tokens), ``cross_modal_transformer`` (CLIP blocks),
  ``ln_pre_t``, ``ln_pre_i``, ``ln_post``, ``mlm_head`` {dense, gelu (QuickGELU), ln, fc -> vocab}.
- ``granularity_queries`` (K, D) and one ``granularity_decoder`` shared by both modalities: per layer
  self-attention over the queries, cross-attention to the modality tokens, FFN (pre-norm).
- ``match_head``: cross-attention fusion of text tokens with image tokens, one FFN, the fused EOT
  token -> 2-way classifier; trained on positive and hard-negative pairs.
"""
from collections import OrderedDict

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, initializer

from ms_models.backbones.clip import CLIP, MultiheadAttention, QuickGELU, Transformer, clip_layer_norm, eot_pool

from . import losses as L

LOSS_ORDER = ("sdm", "itc", "id", "mlm", "gran", "match")


def _normal_(param, std):
    param.set_data(initializer(Normal(std), param.shape, param.dtype))


def _mlp(width, ratio=4):
    return nn.SequentialCell(OrderedDict([("c_fc", nn.Dense(width, width * ratio)), ("gelu", QuickGELU()),
                                          ("c_proj", nn.Dense(width * ratio, width))]))


class GranularityDecoderLayer(nn.Cell):
    """Pre-norm decoder layer on queries (B, K, D) with memory (B, M, D) -> (B, K, D):
    x + self_attn(ln_1 x); x + cross_attn(ln_2 x, ln_mem memory); x + mlp(ln_3 x)."""

    def __init__(self, width, heads):
        super().__init__()
        self.self_attn = MultiheadAttention(width, heads)
        self.ln_1 = clip_layer_norm(width)
        self.cross_attn = MultiheadAttention(width, heads)
        self.ln_2 = clip_layer_norm(width)
        self.ln_mem = clip_layer_norm(width)
        self.mlp = _mlp(width)
        self.ln_3 = clip_layer_norm(width)

    def construct(self, x, memory, memory_pad_mask=None):
        h = self.ln_1(x)
        x = x + self.self_attn(h, h, h)
        mem = self.ln_mem(memory)
        x = x + self.cross_attn(self.ln_2(x), mem, mem, None, memory_pad_mask)
        return x + self.mlp(self.ln_3(x))


class GranularityDecoder(nn.Cell):
    """Shared granularity decoder: learnable queries (K, D) attend to one modality's tokens.

    ``construct(queries (K, D), memory (B, M, D), memory_pad_mask (B, M) or None) -> (B, K, D)``."""

    def __init__(self, width, layers, heads):
        super().__init__()
        self.layers = nn.CellList([GranularityDecoderLayer(width, heads) for _ in range(layers)])
        self.ln_post = clip_layer_norm(width)

    def construct(self, queries, memory, memory_pad_mask=None):
        b = memory.shape[0]
        x = ops.broadcast_to(queries.expand_dims(0), (b,) + queries.shape).astype(memory.dtype)
        for layer in self.layers:
            x = layer(x, memory, memory_pad_mask)
        return self.ln_post(x)


class MatchingHead(nn.Cell):
    """Image-text matching: text tokens (N, L, D) cross-attend to image tokens (N, M, D), one FFN,
    then the fused EOT token -> ``classifier`` (N, 2) logits (index 1 = matched)."""

    def __init__(self, width, heads):
        super().__init__()
        self.ln_q = clip_layer_norm(width)
        self.ln_kv = clip_layer_norm(width)
        self.cross_attn = MultiheadAttention(width, heads)
        self.ln_2 = clip_layer_norm(width)
        self.mlp = _mlp(width)
        self.ln_post = clip_layer_norm(width)
        self.classifier = nn.Dense(width, 2, weight_init=Normal(0.02), bias_init="zeros")

    def construct(self, text_tokens, text_ids, image_tokens):
        kv = self.ln_kv(image_tokens)
        x = text_tokens + self.cross_attn(self.ln_q(text_tokens), kv, kv)
        x = x + self.mlp(self.ln_2(x))
        return self.classifier(self.ln_post(eot_pool(x, text_ids)))


class CFAM(nn.Cell):
    """CFAM / IRRA retrieval model.

    Args:
        num_classes: training identities (ID head width).
        clip_kwargs: ``CLIP`` arguments (embed_dim, image_resolution, vision_*, context_length,
            vocab_size, transformer_*).
        temperature: tau of SDM/ITC (fixed; logit scale 1 / tau).
        losses: enabled loss names, a subset of ``LOSS_ORDER``; their order in the outputs follows
            ``LOSS_ORDER``.
        mlm_depth, mlm_heads: cross-modal transformer of the MLM branch.
        num_queries, decoder_layers, decoder_heads: granularity queries and decoder.
        granularity_loss: 'sdm' | 'itc'; granularity_pool: 'mean' (mean over queries) | 'per_query'.
        decoder_text_mask: ignore padding text tokens (id 0) in the decoder's cross-attention.
        match_heads: heads of the matching head's cross-attention.

    ``encode_image(images (B, 3, H, W)) -> (B, D)``, ``encode_text(ids (B, L)) -> (B, D)`` (global
    features); ``construct(images, caption_ids, pids, mlm_ids, mlm_labels)`` -> tuple of the enabled
    loss components (scalars, ``self.loss_names`` order).
    """

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
        self.use_sdm, self.use_itc, self.use_id, self.use_mlm, self.use_gran, self.use_match = (
            n in self.loss_names for n in LOSS_ORDER)
        self.base_model = CLIP(**(clip_kwargs or {}))
        self.base_model.logit_scale.requires_grad = False  # CLIP's learnable scale is unused (fixed 1/tau)
        d = self.base_model.text_projection.shape[1]
        self.embed_dim = d
        self.logit_scale = 1.0 / float(temperature)
        self.granularity_loss, self.granularity_pool = granularity_loss, granularity_pool
        self.decoder_text_mask = bool(decoder_text_mask)
        heads = max(1, d // 64)
        if self.use_id:
            self.classifier = nn.Dense(d, num_classes, weight_init=Normal(0.001), bias_init="zeros")
        if self.use_mlm:
            vocab = self.base_model.vocab_size
            self.cross_attn = MultiheadAttention(d, mlm_heads or heads)
            self.cross_modal_transformer = Transformer(d, mlm_depth, mlm_heads or heads)
            self.ln_pre_t = clip_layer_norm(d)
            self.ln_pre_i = clip_layer_norm(d)
            self.ln_post = clip_layer_norm(d)
            self.mlm_head = nn.SequentialCell(OrderedDict([
                ("dense", nn.Dense(d, d, weight_init=Normal((2 * d) ** -0.5))), ("gelu", QuickGELU()),
                ("ln", clip_layer_norm(d)),
                ("fc", nn.Dense(d, vocab, weight_init=Normal(d ** -0.5 * (2 * mlm_depth) ** -0.5)))]))
            _normal_(self.cross_attn.in_proj_weight, d ** -0.5)
            _normal_(self.cross_attn.out_proj.weight, d ** -0.5 * (2 * mlm_depth) ** -0.5)
        if self.use_gran:
            self.granularity_queries = Parameter(initializer(Normal(d ** -0.5), (num_queries, d)),
                                                 name="granularity_queries")
            self.granularity_decoder = GranularityDecoder(d, decoder_layers, decoder_heads or heads)
        if self.use_match:
            self.match_head = MatchingHead(d, match_heads or heads)

    def encode_image(self, images):
        """(B, 3, H, W) -> (B, D) class-token feature (unnormalised)."""
        return self.base_model.forward_tokens_image(images)[:, 0]

    def encode_text(self, caption_ids):
        """(B, L) ids -> (B, D) EOT feature (unnormalised)."""
        return self.base_model.encode_text(caption_ids)

    def cross_former(self, q, kv):
        """IRRA's MLM fusion: (B, L, D) text tokens, (B, M, D) image tokens -> (B, L, D)."""
        k = self.ln_pre_i(kv)
        x = self.cross_attn(self.ln_pre_t(q), k, k)
        return self.ln_post(self.cross_modal_transformer(x))

    def granularity_features(self, image_tokens, text_tokens, caption_ids):
        """Shared decoder on both modalities: (G_v (B, K, D), G_t (B, K, D))."""
        pad = (caption_ids == 0) if self.decoder_text_mask else None
        g_v = self.granularity_decoder(self.granularity_queries, image_tokens)
        g_t = self.granularity_decoder(self.granularity_queries, text_tokens, pad)
        return g_v, g_t

    def _align(self, a, b, pids):
        if self.granularity_loss == "sdm":
            return L.sdm_loss(a, b, pids, self.logit_scale)
        return L.itc_loss(a, b, self.logit_scale)

    def granularity_alignment(self, g_v, g_t, pids):
        """Alignment loss of the decoder outputs (mean-pooled, or averaged over the K queries)."""
        if self.granularity_pool == "mean":
            return self._align(g_v.mean(axis=1), g_t.mean(axis=1), pids)
        total = 0.0
        for k in range(g_v.shape[1]):
            total = total + self._align(g_v[:, k], g_t[:, k], pids)
        return total / g_v.shape[1]

    def match_logits(self, image_tokens, text_tokens, caption_ids, i_feats, t_feats, pids):
        """Positive pairs then hard negatives: logits (3B, 2), labels (3B,) int32 (1 = matched)."""
        neg_text, neg_image = L.hard_negatives(i_feats, t_feats, pids)
        txt = ops.concat((text_tokens, ops.gather(text_tokens, neg_text, 0), text_tokens), axis=0)
        ids = ops.concat((caption_ids, ops.gather(caption_ids, neg_text, 0), caption_ids), axis=0)
        img = ops.concat((image_tokens, image_tokens, ops.gather(image_tokens, neg_image, 0)), axis=0)
        b = caption_ids.shape[0]
        labels = ops.concat((ops.ones((b,), ms.int32), ops.zeros((2 * b,), ms.int32)))
        return self.match_head(txt, ids, img), labels

    def construct(self, images, caption_ids, pids, mlm_ids=None, mlm_labels=None):
        image_tokens = self.base_model.forward_tokens_image(images)
        text_tokens = self.base_model.forward_tokens(caption_ids)
        i_feats = image_tokens[:, 0]
        t_feats = eot_pool(text_tokens, caption_ids)
        out = []
        if self.use_sdm:
            out.append(L.sdm_loss(i_feats, t_feats, pids, self.logit_scale))
        if self.use_itc:
            out.append(L.itc_loss(i_feats, t_feats, self.logit_scale))
        if self.use_id:
            out.append(L.id_loss(self.classifier(i_feats), self.classifier(t_feats), pids))
        if self.use_mlm:
            x = self.mlm_head(self.cross_former(self.base_model.forward_tokens(mlm_ids), image_tokens))
            out.append(L.masked_lm_loss(x.reshape(-1, x.shape[-1]), mlm_labels.reshape(-1)))
        if self.use_gran:
            g_v, g_t = self.granularity_features(image_tokens, text_tokens, caption_ids)
            out.append(self.granularity_alignment(g_v, g_t, pids))
        if self.use_match:
            logits, labels = self.match_logits(image_tokens, text_tokens, caption_ids, i_feats, t_feats, pids)
            out.append(L._ce(logits, labels))
        return tuple(out)
