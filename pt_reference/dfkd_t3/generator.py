"""Text-to-text generator (PyTorch reference): the twin of ``ms_models/dfkd_t3/generator.py``
(causal pre-LN Transformer LM over a restricted vocabulary of teacher ids; [PAD]=0 and [SEP]=1
are never generated)."""
import math

import numpy as np
import torch
from torch import nn

MASK_VALUE = -1.0e9
PAD, SEP = 0, 1


def _dense(n_in, n_out):
    layer = nn.Linear(n_in, n_out)
    nn.init.trunc_normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)
    return layer


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"generator: hidden {dim} is not a multiple of heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = _dense(dim, 3 * dim)
        self.proj = _dense(dim, dim)

    def forward(self, x, additive_mask):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale + additive_mask, dim=-1)
        return self.proj(torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.fc1 = _dense(dim, ffn)
        self.act = nn.GELU()
        self.fc2 = _dense(ffn, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class GeneratorBlock(nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = _Mlp(dim, ffn)

    def forward(self, x, additive_mask):
        x = x + self.attn(self.norm1(x), additive_mask)
        return x + self.mlp(self.norm2(x))


def causal_additive_mask(key_mask):
    """(B, T) 1/0 key mask -> (B, 1, T, T) additive mask (query i sees valid keys j <= i, and itself)."""
    t = key_mask.shape[1]
    causal = torch.tril(torch.ones(t, t))
    allowed = causal[None] * key_mask.float()[:, None, :]
    allowed = torch.maximum(allowed, torch.eye(t)[None])
    return ((1.0 - allowed) * MASK_VALUE)[:, None]


class TextGenerator(nn.Module):
    """Causal LM: ``forward_embeds(x (B, T, H), key_mask (B, T)) -> logits (B, T, N)``."""

    def __init__(self, vocab_size, hidden=256, layers=2, heads=4, ffn=1024, max_len=64):
        super().__init__()
        self.vocab_size, self.max_len = int(vocab_size), int(max_len)
        self.tok_embed = nn.Embedding(self.vocab_size, hidden)
        nn.init.trunc_normal_(self.tok_embed.weight, std=0.02)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.max_len, hidden))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList([GeneratorBlock(hidden, heads, ffn) for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden, eps=1e-5)
        self.head = _dense(hidden, self.vocab_size)
        gen_mask = np.zeros(self.vocab_size, np.float32)
        gen_mask[[PAD, SEP]] = MASK_VALUE
        self.register_buffer("gen_logit_mask", torch.from_numpy(gen_mask), persistent=False)

    def embed_table(self):
        return self.tok_embed.weight

    def forward_embeds(self, x, key_mask):
        h = x + self.pos_embed[:, :x.shape[1]]
        additive = causal_additive_mask(key_mask)
        for blk in self.blocks:
            h = blk(h, additive)
        return self.head(self.norm(h))

    def forward(self, ids, key_mask):
        return self.forward_embeds(self.embed_table()[ids.long()], key_mask)

    def generate(self, prefix_ids, prefix_mask, gumbel, tau, straight_through=True):
        """Twin of the MindSpore ``generate``: ``(onehots (B, L, N), logits (B, L, N), ids (B, L))``."""
        table = self.embed_table()
        emb = table[prefix_ids.long()]
        mask = prefix_mask.float()
        ones = torch.ones(mask.shape[0], 1)
        ys, logits_all, ids = [], [], []
        for t in range(gumbel.shape[1]):
            logits = self.forward_embeds(emb, mask)[:, -1] + self.gen_logit_mask
            noisy = logits + gumbel[:, t]
            idx = torch.argmax(noisy, dim=-1)
            hard = torch.nn.functional.one_hot(idx, self.vocab_size).float()
            if straight_through:
                soft = torch.softmax(noisy / tau, dim=-1)
                y = hard - soft.detach() + soft
            else:
                y = hard
            emb = torch.cat((emb, torch.matmul(y, table)[:, None]), dim=1)
            mask = torch.cat((mask, ones), dim=1)
            ys.append(y)
            logits_all.append(logits)
            ids.append(idx)
        return torch.stack(ys, 1), torch.stack(logits_all, 1), torch.stack(ids, 1)
