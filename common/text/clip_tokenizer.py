"""CLIP byte-level BPE tokenizer, framework-free, reading the vocabulary file shipped inside the
installed ``clip-anytorch`` package (``clip/bpe_simple_vocab_16e6.txt.gz``, located without
importing ``clip``) or any path given.

Vocabulary (49,408 ids): 256 byte symbols, the same 256 with the end-of-word mark ``</w>``, 48,894
merged symbols, then the special tokens. Two conventions (``mask_token``):

- ``False`` (OpenAI CLIP): ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407.
- ``True`` (IRRA / CFAM): the last merged symbol is dropped and ``<|mask|>`` = 49405 is added, so
  SOT and EOT keep their ids. The dropped merge is removed from the merge ranks too (IRRA keeps
  it and then fails with a KeyError on the word that produces it, "jekyll").

``tokenize(texts, context_length)`` -> int64 (N, L): ``[SOT] + tokens + [EOT]``, zero padded; a
longer sequence is cut to L with EOT forced into the last slot (``truncate=True``) or raises.
"""
import gzip
import html
import importlib.util
import os
from functools import lru_cache

import ftfy
import numpy as np
import regex

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2
SOT, EOT, MASK = "<|startoftext|>", "<|endoftext|>", "<|mask|>"


def default_bpe_path():
    """Path of the BPE file shipped in the installed ``clip`` package (clip-anytorch); the package
    is only located, never imported (its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the CLIP BPE vocabulary {VOCAB_FILE} ships in the 'clip-anytorch' package, which "
                                "is not installed; install it or pass bpe_path=")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, VOCAB_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{VOCAB_FILE} not found in the 'clip' package folders "
                            f"{list(spec.submodule_search_locations)}; pass bpe_path=")


@lru_cache()
def bytes_to_unicode():
    """Map every byte 0..255 to a printable unicode character (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _pairs(word):
    return {(a, b) for a, b in zip(word[:-1], word[1:])}


def basic_clean(text):
    text = ftfy.fix_text(text)
    return html.unescape(html.unescape(text)).strip()


def whitespace_clean(text):
    return regex.sub(r"\s+", " ", text).strip()


class CLIPTokenizer:
    """CLIP BPE tokenizer.

    Args:
        bpe_path: the gzip merges file; default: the one in the installed ``clip`` package.
        mask_token: add ``<|mask|>`` (IRRA convention, see the module docstring).
    """

    def __init__(self, bpe_path=None, mask_token=True):
        path = bpe_path or default_bpe_path()
        try:
            with gzip.open(path) as f:
                lines = f.read().decode("utf-8").split("\n")
        except OSError as err:
            raise ValueError(f"{path}: cannot read the CLIP BPE merges file ({err})") from err
        merges = [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]
        if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{path}: expected {NUM_MERGES} merge lines of two symbols after the header")
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        specials = [SOT, EOT]
        if mask_token:
            vocab.pop()
            merges = merges[:-1]
            specials = [MASK, SOT, EOT]
        vocab += specials
        self.mask_token = mask_token
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {s: s for s in specials}
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]
        self.mask_id = self.encoder[MASK] if mask_token else None
        self.vocab_size = len(vocab)
        alternatives = "|".join(regex.escape(s) for s in specials)
        self.pat = regex.compile(alternatives + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                 regex.IGNORECASE)

    def bpe(self, token):
        """Merge the symbols of one pre-token (byte-mapped) greedily by rank; space-separated result."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text):
        """Caption -> list of BPE ids (no SOT/EOT); text is cleaned (ftfy, html) and lower-cased."""
        ids = []
        for token in regex.findall(self.pat, whitespace_clean(basic_clean(text)).lower()):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def decode(self, ids):
        """List of ids -> text (end-of-word marks become spaces)."""
        text = "".join(self.decoder[int(i)] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ")

    def tokenize(self, texts, context_length=77, truncate=True):
        """str or list of str -> int64 (N, context_length): SOT, BPE ids, EOT, zero padding.

        A sequence longer than ``context_length`` is cut with EOT forced into the last slot when
        ``truncate``; otherwise a ValueError names the caption.
        """
        if isinstance(texts, str):
            texts = [texts]
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2 (SOT and EOT), got {context_length}")
        out = np.zeros((len(texts), context_length), np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id] + self.encode(text) + [self.eot_id]
            if len(ids) > context_length:
                if not truncate:
                    raise ValueError(f"caption of {len(ids)} tokens exceeds context_length {context_length}: "
                                     f"{text[:60]!r}...")
                ids = ids[:context_length]
                ids[-1] = self.eot_id
            out[row, :len(ids)] = ids
        return out


def random_mask_tokens(ids, rng, mask_id, vocab_low=1, vocab_high=None, prob=0.15):
    """BERT-style masking of a batch of token ids (IRRA's MLM recipe), every draw from ``rng``.

    Args:
        ids: int (N, L) token ids with SOT/EOT/padding.
        rng: ``np.random.Generator``.
        mask_id: id of ``<|mask|>``; only ids in (0, mask_id) are candidates (SOT/EOT/pad never).
        vocab_low, vocab_high: random replacements are drawn from [vocab_low, vocab_high]
            (default mask_id - 1, i.e. [1, 49404]).
        prob: selection probability per candidate; of the selected, 80 % -> mask, 10 % -> random id,
            10 % unchanged.

    Returns:
        ``(masked_ids, labels)`` int64 (N, L); labels hold the original id where selected, else 0.
        A row with no selection gets position 1 masked (IRRA).
    """
    ids = np.asarray(ids, np.int64)
    vocab_high = mask_id - 1 if vocab_high is None else vocab_high
    u = rng.random(ids.shape)
    v = rng.random(ids.shape)
    rand_ids = rng.integers(vocab_low, vocab_high + 1, size=ids.shape)
    cand = (ids > 0) & (ids < mask_id)
    sel = cand & (u < prob)
    masked = ids.copy()
    masked[sel & (v < 0.8)] = mask_id
    swap = sel & (v >= 0.8) & (v < 0.9)
    masked[swap] = rand_ids[swap]
    labels = np.where(sel, ids, 0)
    empty = ~sel.any(axis=1)
    labels[empty, 1] = ids[empty, 1]
    masked[empty, 1] = mask_id
    return masked, labels
