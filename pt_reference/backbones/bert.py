"""BERT-style encoder (PyTorch reference) with Hugging Face ``BertModel`` parameter names; the twin
of ``ms_models/backbones/bert.py``. A Hugging Face BERT checkpoint (e.g. all-MiniLM-L6-v2's
``model.safetensors``) loads with ``strict=True``.

Exact (erf) GELU, LayerNorm eps 1e-12 by default, post-LN blocks, additive attention mask.
Shapes: token ids (B, L) int64, attention mask (B, L) (1 = attend), hidden (B, L, H).
"""
from dataclasses import dataclass

import math

import torch
from torch import nn

MASK_VALUE = -1.0e9


@dataclass
class BertConfig:
    """The Hugging Face ``BertConfig`` fields the encoder uses (all-MiniLM-L6-v2 values by default)."""
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    add_pooler: bool = True

    @classmethod
    def from_dict(cls, d, **overrides):
        """From a Hugging Face ``config.json`` dict; unknown keys are ignored, ``overrides`` win."""
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        if d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"BertConfig: hidden_act {d['hidden_act']!r} is not supported (only exact 'gelu')")
        kw.update(overrides)
        return cls(**kw)


def _dropout(p):
    return nn.Dropout(float(p)) if p > 0 else nn.Identity()


def _dense(cfg, n_in, n_out):
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight, std=cfg.initializer_range)
    nn.init.zeros_(layer.bias)
    return layer


class BertEmbeddings(nn.Module):
    """word + absolute position + token-type (all type 0) embeddings, LayerNorm, dropout."""

    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        for emb in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            nn.init.normal_(emb.weight, std=cfg.initializer_range)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = _dropout(cfg.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings)[None], persistent=True)

    def forward(self, inputs_embeds):
        length = inputs_embeds.shape[1]
        pos = self.position_embeddings.weight[:length]
        tok = self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(inputs_embeds + pos[None] + tok))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size {cfg.hidden_size} is not a multiple of "
                             f"num_attention_heads {cfg.num_attention_heads}")
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.query = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.key = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.value = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.dropout = _dropout(cfg.attention_probs_dropout_prob)

    def _split(self, x):
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, additive_mask):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + additive_mask
        probs = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.matmul(probs, v).transpose(1, 2)
        return out.reshape(out.shape[0], out.shape[1], self.heads * self.head_dim)


class BertSelfOutput(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = _dropout(cfg.hidden_dropout_prob)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x, additive_mask):
        return self.output(self.self(x, additive_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = _dropout(cfg.hidden_dropout_prob)

    def forward(self, hidden, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x, additive_mask):
        a = self.attention(x, additive_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.num_hidden_layers)])

    def forward(self, x, additive_mask):
        states = ()
        for blk in self.layer:
            x = blk(x, additive_mask)
            states += (x,)
        return x, states


class BertPooler(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden):
        return self.activation(self.dense(hidden[:, 0]))


def additive_attention_mask(attention_mask):
    """(B, L) 1/0 key mask -> (B, 1, 1, L) float32 additive mask (0 or ``MASK_VALUE``)."""
    return ((1.0 - attention_mask.float()) * MASK_VALUE)[:, None, None, :]


class BertModel(nn.Module):
    """Hugging Face ``BertModel``: ``(input_ids, attention_mask) -> (sequence_output, pooled_output)``;
    ``forward_embeds(inputs_embeds, attention_mask)`` takes word embeddings (B, L, H) instead."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg) if cfg.add_pooler else None

    def word_embedding_table(self):
        return self.embeddings.word_embeddings.weight

    def forward_embeds(self, inputs_embeds, attention_mask):
        hidden, _ = self.encoder(self.embeddings(inputs_embeds), additive_attention_mask(attention_mask))
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return hidden, pooled

    def forward(self, input_ids, attention_mask):
        return self.forward_embeds(self.word_embedding_table()[input_ids.long()], attention_mask)


class BertForSequenceClassification(nn.Module):
    """Hugging Face ``BertForSequenceClassification``: pooler output -> dropout -> ``classifier``."""

    def __init__(self, cfg, num_labels=2, classifier_dropout=None):
        super().__init__()
        if not cfg.add_pooler:
            raise ValueError("BertForSequenceClassification needs BertConfig.add_pooler=True")
        self.num_labels = int(num_labels)
        self.bert = BertModel(cfg)
        p = cfg.hidden_dropout_prob if classifier_dropout is None else classifier_dropout
        self.dropout = _dropout(p)
        self.classifier = _dense(cfg, cfg.hidden_size, self.num_labels)

    def forward_embeds(self, inputs_embeds, attention_mask):
        _, pooled = self.bert.forward_embeds(inputs_embeds, attention_mask)
        return self.classifier(self.dropout(pooled))

    def forward(self, input_ids, attention_mask):
        _, pooled = self.bert(input_ids, attention_mask)
        return self.classifier(self.dropout(pooled))
