"""Text-to-text generator (MindSpore): a causal pre-LN Transformer LM over a restricted vocabulary.

The generator's vocabulary is a list of ``N`` teacher (WordPiece) ids (``vocab_ids``), so its
tokens are the teacher's tokens (``vocab_map: shared``): generator id ``j`` is teacher id
``vocab_ids[j]``. Id 0 is ``[PAD]`` and id 1 is ``[SEP]``; neither is ever generated.

Input layout (static shapes): a left-padded prefix ``(B, P)`` = ``[PAD]... source tokens [SEP]
prompt`` where ``prompt`` is the label word (``conditioning: label_prompt``) or ``[SEP]``
(``conditioning: none``), followed by ``L`` generated tokens.

Parameter names (timm-like): ``tok_embed``, ``pos_embed``, ``blocks.<i>.{norm1, attn.qkv, attn.proj,
norm2, mlp.fc1, mlp.fc2}``, ``norm``, ``head``.
"""
import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from ms_models.layers.init import dense, layer_norm

MASK_VALUE = -1.0e9
PAD, SEP = 0, 1


class CausalSelfAttention(nn.Cell):
    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"generator: hidden {dim} is not a multiple of heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.scale = 1.0 / float(np.sqrt(self.head_dim))
        self.qkv = dense(dim, 3 * dim)
        self.proj = dense(dim, dim)

    def construct(self, x, additive_mask):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ops.softmax(ops.matmul(q, k.transpose(0, 1, 3, 2)) * self.scale + additive_mask, axis=-1)
        return self.proj(ops.matmul(attn, v).transpose(0, 2, 1, 3).reshape(b, n, c))


class GeneratorBlock(nn.Cell):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.norm1 = layer_norm(dim, 1e-5)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = layer_norm(dim, 1e-5)
        self.mlp = _Mlp(dim, ffn)

    def construct(self, x, additive_mask):
        x = x + self.attn(self.norm1(x), additive_mask)
        return x + self.mlp(self.norm2(x))


class _Mlp(nn.Cell):
    def __init__(self, dim, ffn):
        super().__init__()
        self.fc1 = dense(dim, ffn)
        self.act = nn.GELU(approximate=False)
        self.fc2 = dense(ffn, dim)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


def causal_additive_mask(key_mask):
    """(B, T) 1/0 key mask -> (B, 1, T, T) additive mask: query i sees keys j <= i that are valid."""
    t = key_mask.shape[1]
    causal = Tensor(np.tril(np.ones((t, t), np.float32)))
    allowed = causal[None] * key_mask.astype(ms.float32)[:, None, :]
    # a fully masked row (a left-pad query) may still see itself, so its softmax stays finite
    allowed = ops.maximum(allowed, Tensor(np.eye(t, dtype=np.float32))[None])
    return ((1.0 - allowed) * MASK_VALUE)[:, None]


class TextGenerator(nn.Cell):
    """Causal LM: ``forward_embeds(x (B, T, H), key_mask (B, T)) -> logits (B, T, N)``.

    Args:
        vocab_size: ``N``, the restricted vocabulary size.
        hidden, layers, heads, ffn: Transformer sizes.
        max_len: longest prefix + generated sequence (positions).
    """

    def __init__(self, vocab_size, hidden=256, layers=2, heads=4, ffn=1024, max_len=64):
        super().__init__()
        self.vocab_size, self.max_len = int(vocab_size), int(max_len)
        self.tok_embed = nn.Embedding(self.vocab_size, hidden, embedding_table=TruncatedNormal(0.02))
        self.pos_embed = Parameter(initializer(TruncatedNormal(0.02), (1, self.max_len, hidden), ms.float32),
                                   name="pos_embed")
        self.blocks = nn.CellList([GeneratorBlock(hidden, heads, ffn) for _ in range(layers)])
        self.norm = layer_norm(hidden, 1e-5)
        self.head = dense(hidden, self.vocab_size)
        gen_mask = np.zeros(self.vocab_size, np.float32)
        gen_mask[[PAD, SEP]] = MASK_VALUE
        self.gen_logit_mask = Tensor(gen_mask)

    def embed_table(self):
        return self.tok_embed.embedding_table

    def forward_embeds(self, x, key_mask):
        t = x.shape[1]
        h = x + self.pos_embed[:, :t]
        additive = causal_additive_mask(key_mask)
        for blk in self.blocks:
            h = blk(h, additive)
        return self.head(self.norm(h))

    def construct(self, ids, key_mask):
        """Teacher-forced logits (B, T, N) of generator ids (B, T)."""
        return self.forward_embeds(ops.gather(self.embed_table(), ids.astype(ms.int32), 0), key_mask)

    def generate(self, prefix_ids, prefix_mask, gumbel, tau, straight_through=True):
        """Sample ``L = gumbel.shape[1]`` tokens autoregressively with the given noise.

        Token t is ``argmax(logits_t + g_t)`` (Gumbel-max sampling; [PAD]/[SEP] excluded). With
        ``straight_through`` the fed-back and returned one-hot is ``onehot + soft - stop_grad(soft)``
        with ``soft = softmax((logits_t + g_t) / tau)`` (forward one-hot, backward softmax); otherwise
        it is the plain one-hot (no gradient through the tokens; REINFORCE uses the logits).

        Args:
            prefix_ids, prefix_mask: (B, P) int32.
            gumbel: (B, L, N) float32 noise drawn in numpy.
            tau: float32 scalar tensor (Gumbel-softmax temperature).
        Returns:
            ``(onehots (B, L, N), logits (B, L, N), ids (B, L) int32)``; logits include the
            [PAD]/[SEP] mask.
        """
        table = self.embed_table()
        emb = ops.gather(table, prefix_ids.astype(ms.int32), 0)
        mask = prefix_mask.astype(ms.float32)
        ones = ops.ones((mask.shape[0], 1), ms.float32)
        ys, logits_all, ids = (), (), ()
        for t in range(gumbel.shape[1]):
            logits = self.forward_embeds(emb, mask)[:, -1] + self.gen_logit_mask
            noisy = logits + gumbel[:, t]
            idx = ops.argmax(noisy, dim=-1).astype(ms.int32)
            hard = ops.one_hot(idx, self.vocab_size, Tensor(1.0, ms.float32), Tensor(0.0, ms.float32))
            if straight_through:
                soft = ops.softmax(noisy / tau, axis=-1)
                y = hard - ops.stop_gradient(soft) + soft
            else:
                y = hard
            emb = ops.concat((emb, ops.matmul(y, table)[:, None]), axis=1)
            mask = ops.concat((mask, ones), axis=1)
            ys += (y,)
            logits_all += (logits,)
            ids += (idx,)
        return ops.stack(ys, axis=1), ops.stack(logits_all, axis=1), ops.stack(ids, axis=1)
