"""BERT-style encoder (MindSpore) with Hugging Face ``BertModel`` parameter names.

``embeddings.{word,position,token_type}_embeddings`` + ``embeddings.LayerNorm``, then
``encoder.layer.<i>.{attention.self.{query,key,value}, attention.output.{dense,LayerNorm},
intermediate.dense, output.{dense,LayerNorm}}`` and an optional ``pooler.dense``. With the generic
name rules of ``common.weights`` (LayerNorm weight/bias -> gamma/beta, Embedding weight ->
embedding_table) a Hugging Face checkpoint (e.g. all-MiniLM-L6-v2) loads strictly.

Exact (erf) GELU, LayerNorm eps 1e-12 by default, post-LN blocks, additive attention mask.
Shapes: token ids (B, L) int32, attention mask (B, L) (1 = attend), hidden (B, L, H).
"""
from dataclasses import dataclass

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal

MASK_VALUE = -1.0e9  # added to attention scores of masked keys (exp underflows to 0 in fp32)


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
    return nn.Dropout(p=float(p)) if p > 0 else nn.Identity()


def _dense(cfg, n_in, n_out):
    return nn.Dense(n_in, n_out, weight_init=Normal(cfg.initializer_range), bias_init="zeros")


def _layer_norm(cfg):
    return nn.LayerNorm((cfg.hidden_size,), epsilon=cfg.layer_norm_eps)


class BertEmbeddings(nn.Cell):
    """word + absolute position + token-type (all type 0) embeddings, LayerNorm, dropout."""

    def __init__(self, cfg):
        super().__init__()
        init = Normal(cfg.initializer_range)
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, embedding_table=init)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size, embedding_table=init)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size, embedding_table=init)
        self.LayerNorm = _layer_norm(cfg)
        self.dropout = _dropout(cfg.hidden_dropout_prob)
        # Hugging Face keeps this buffer in the state dict; it is part of the strict key set.
        self.position_ids = Parameter(Tensor(np.arange(cfg.max_position_embeddings, dtype=np.int32)[None]),
                                      name="position_ids", requires_grad=False)

    def construct(self, inputs_embeds):
        """(B, L, H) word embeddings -> (B, L, H) embedded input."""
        length = inputs_embeds.shape[1]
        pos = self.position_embeddings.embedding_table[:length]
        tok = self.token_type_embeddings.embedding_table[0]
        return self.dropout(self.LayerNorm(inputs_embeds + pos[None] + tok))


class BertSelfAttention(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size {cfg.hidden_size} is not a multiple of "
                             f"num_attention_heads {cfg.num_attention_heads}")
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.scale = 1.0 / float(np.sqrt(self.head_dim))
        self.query = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.key = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.value = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.dropout = _dropout(cfg.attention_probs_dropout_prob)

    def _split(self, x):
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(0, 2, 1, 3)

    def construct(self, x, additive_mask):
        """x (B, L, H); additive_mask broadcastable to (B, heads, L, L)."""
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = ops.matmul(q, k.transpose(0, 1, 3, 2)) * self.scale + additive_mask
        probs = self.dropout(ops.softmax(scores, axis=-1))
        out = ops.matmul(probs, v).transpose(0, 2, 1, 3)
        b, n = out.shape[0], out.shape[1]
        return out.reshape(b, n, self.heads * self.head_dim)


class BertSelfOutput(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = _layer_norm(cfg)
        self.dropout = _dropout(cfg.hidden_dropout_prob)

    def construct(self, hidden, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def construct(self, x, additive_mask):
        return self.output(self.self(x, additive_mask), x)


class BertIntermediate(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.hidden_size, cfg.intermediate_size)
        self.intermediate_act_fn = nn.GELU(approximate=False)

    def construct(self, x):
        return self.intermediate_act_fn(self.dense(x))


class BertOutput(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = _layer_norm(cfg)
        self.dropout = _dropout(cfg.hidden_dropout_prob)

    def construct(self, hidden, residual):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertLayer(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def construct(self, x, additive_mask):
        a = self.attention(x, additive_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.CellList([BertLayer(cfg) for _ in range(cfg.num_hidden_layers)])

    def construct(self, x, additive_mask):
        """Returns the last hidden state and the tuple of every layer's output."""
        states = ()
        for blk in self.layer:
            x = blk(x, additive_mask)
            states += (x,)
        return x, states


class BertPooler(nn.Cell):
    def __init__(self, cfg):
        super().__init__()
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size)
        self.activation = nn.Tanh()

    def construct(self, hidden):
        return self.activation(self.dense(hidden[:, 0]))


def additive_attention_mask(attention_mask):
    """(B, L) 1/0 key mask -> (B, 1, 1, L) float32 additive mask (0 or ``MASK_VALUE``)."""
    m = attention_mask.astype(ms.float32)
    return ((1.0 - m) * MASK_VALUE)[:, None, None, :]


class BertModel(nn.Cell):
    """Hugging Face ``BertModel``: ``(input_ids, attention_mask) -> (sequence_output, pooled_output)``.

    ``forward_embeds(inputs_embeds, attention_mask)`` takes word embeddings (B, L, H) instead of ids
    (used to feed soft / straight-through one-hot tokens). ``pooled_output`` is None without pooler.
    """

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg) if cfg.add_pooler else None

    def word_embedding_table(self):
        return self.embeddings.word_embeddings.embedding_table

    def forward_embeds(self, inputs_embeds, attention_mask):
        hidden, _ = self.encoder(self.embeddings(inputs_embeds), additive_attention_mask(attention_mask))
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return hidden, pooled

    def construct(self, input_ids, attention_mask):
        embeds = ops.gather(self.word_embedding_table(), input_ids.astype(ms.int32), 0)
        return self.forward_embeds(embeds, attention_mask)


class BertForSequenceClassification(nn.Cell):
    """Hugging Face ``BertForSequenceClassification``: pooler output -> dropout -> ``classifier``.

    ``construct(input_ids, attention_mask)`` and ``forward_embeds(inputs_embeds, attention_mask)``
    return logits (B, num_labels).
    """

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

    def construct(self, input_ids, attention_mask):
        _, pooled = self.bert(input_ids, attention_mask)
        return self.classifier(self.dropout(pooled))
