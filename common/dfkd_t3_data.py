"""DFKD-T3 data (framework-free): the general-domain corpus, the built-in sentiment task, the
generator's restricted vocabulary and the numpy batches both frameworks consume.

- Corpus: Python's ``pydoc_data.topics`` (shipped with Python), split into sentences, or a text
  file with one sentence per line.
- Built-in task (``demo_sentiment``): template sentences labelled by the sign of their summed word
  valence (a hand lexicon, negation flips the next word), written as SST-2-style TSV.
- Generator vocabulary: ``[PAD]``, ``[SEP]``, the label words, then the most frequent corpus
  WordPiece ids (ties broken by id) up to ``size``.
- Prefix layout: left-padded ``[PAD]... source [SEP] prompt`` (see ms_models/dfkd_t3/generator.py).
"""
import os
import re
from collections import Counter

import numpy as np

from common.data.glue import read_glue_tsv, write_sst2_tsv

_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def corpus_sentences(source="pydoc_topics", min_words=4, max_words=40):
    """Deterministic list of unique sentences of ``min_words``..``max_words`` words."""
    if source == "pydoc_topics":
        import pydoc_data.topics as topics
        texts = [topics.topics[k] for k in sorted(topics.topics)]
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(f"data.corpus: '{source}' is neither 'pydoc_topics' nor an existing text file")
        with open(source, encoding="utf-8") as f:
            texts = [f.read()]
    out, seen = [], set()
    for text in texts:
        for sent in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)):
            sent = sent.strip()
            n = len(sent.split())
            if min_words <= n <= max_words and sent not in seen and re.search(r"[A-Za-z]", sent):
                seen.add(sent)
                out.append(sent)
    if not out:
        raise ValueError(f"data.corpus '{source}': no sentence of {min_words}..{max_words} words")
    return out


POSITIVE = {"good": 2, "great": 3, "wonderful": 3, "excellent": 3, "lovely": 2, "enjoyable": 2, "brilliant": 3,
            "charming": 2, "delightful": 3, "fun": 2, "beautiful": 2, "moving": 1, "clever": 2, "fresh": 1,
            "superb": 3, "warm": 1, "funny": 2, "love": 3, "like": 1, "enjoyed": 2, "best": 3}
NEGATIVE = {"bad": -2, "awful": -3, "terrible": -3, "boring": -2, "dull": -2, "poor": -2, "weak": -1,
            "horrible": -3, "annoying": -2, "messy": -1, "stupid": -2, "bland": -1, "tedious": -2,
            "painful": -2, "hate": -3, "hated": -3, "disliked": -2, "worst": -3, "ugly": -2, "slow": -1}
NOUNS = ("film", "movie", "story", "plot", "acting", "script", "ending", "cast", "music", "director",
         "performance", "dialogue", "soundtrack", "scene", "character", "camera work", "pacing", "show")
TEMPLATES = ("the {n} was {a}", "the {n} is {a} and {a2}", "i {v} the {n}", "a {a} {n} with a {a2} {n2}",
             "this {n} felt {neg}{a}", "honestly the {n} was {neg}{a} but the {n2} was {a2}",
             "what a {a} {n}", "i {v} this {n} , it is {a}", "{a} {n} , {a2} {n2}")
VERBS_POS, VERBS_NEG = ("love", "enjoyed", "like"), ("hate", "hated", "disliked")
ADJ_POS = [w for w in POSITIVE if w not in VERBS_POS]
ADJ_NEG = [w for w in NEGATIVE if w not in VERBS_NEG]


def sentence_valence(sentence):
    """Summed lexicon valence; ``not`` flips the sign of the next scored word."""
    total, flip = 0, 1
    for w in sentence.split():
        if w == "not":
            flip = -1
            continue
        v = POSITIVE.get(w, 0) + NEGATIVE.get(w, 0)
        if v:
            total += flip * v
            flip = 1
    return total


def demo_sentiment_sentences(n, seed):
    """``(sentences, labels)``: ``n`` template sentences with label 1 when the valence is > 0 (never 0)."""
    rng = np.random.default_rng(seed)
    sentences, labels = [], []
    while len(sentences) < n:
        t = TEMPLATES[rng.integers(len(TEMPLATES))]
        adj = ADJ_POS + ADJ_NEG
        s = t.format(n=rng.choice(NOUNS), n2=rng.choice(NOUNS), a=rng.choice(adj), a2=rng.choice(adj),
                     v=rng.choice(VERBS_POS + VERBS_NEG), neg="not " if rng.random() < 0.3 else "")
        v = sentence_valence(s)
        if v != 0:
            sentences.append(s)
            labels.append(int(v > 0))
    return sentences, labels


def demo_sentiment_root(cache_dir=None, n_train=4000, n_dev=1000, seed=0):
    """Folder with SST-2-style ``train.tsv`` / ``dev.tsv`` of the built-in task (built on first use)."""
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "noah-ms", "data")
    root = os.path.join(cache_dir, f"dfkd_t3_sentiment_{n_train}_{n_dev}_{seed}")
    for split, n, s in (("train", n_train, seed), ("dev", n_dev, seed + 1)):
        path = os.path.join(root, f"{split}.tsv")
        if not os.path.isfile(path):
            write_sst2_tsv(path, *demo_sentiment_sentences(n, s))
    return root


def load_demo_sentiment(split, **kw):
    return read_glue_tsv(os.path.join(demo_sentiment_root(**kw), f"{split}.tsv"), "sst2")


def build_generator_vocab(tokenizer, token_lists, size, label_words=()):
    """(size,) int32 teacher ids: [PAD], [SEP], label words, then the most frequent ids of
    ``token_lists`` (the corpus encoded without special tokens)."""
    ids = [tokenizer.pad_id, tokenizer.sep_id]
    for w in label_words:
        if w not in tokenizer.vocab:
            raise ValueError(f"dfkd.label_words: {w!r} is not a single WordPiece token of the teacher vocabulary")
        if tokenizer.vocab[w] not in ids:
            ids.append(tokenizer.vocab[w])
    specials = {tokenizer.vocab[t] for t in _SPECIAL}
    counts = Counter(i for toks in token_lists for i in toks if i not in specials)
    for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(ids) >= size:
            break
        if i not in ids:
            ids.append(i)
    if len(ids) < size:
        raise ValueError(f"model.generator.vocab_size {size} exceeds the {len(ids)} distinct corpus tokens")
    return np.asarray(ids, np.int32)


class GeneratorVocab:
    """Teacher id <-> generator id maps for a vocabulary from :func:`build_generator_vocab`."""

    def __init__(self, tokenizer, vocab_ids, label_words):
        self.tokenizer, self.vocab_ids = tokenizer, np.asarray(vocab_ids, np.int32)
        self.to_gen = {int(t): g for g, t in enumerate(self.vocab_ids)}
        self.prompt_ids = np.asarray([self.to_gen[tokenizer.vocab[w]] for w in label_words], np.int32)

    def encode(self, sentence):
        """Generator ids of ``sentence`` (tokens outside the vocabulary are dropped)."""
        return self.from_teacher(self.tokenizer.encode(sentence, add_special_tokens=False))

    def from_teacher(self, teacher_ids):
        """Generator ids of teacher ids (ids outside the vocabulary are dropped)."""
        return [self.to_gen[i] for i in teacher_ids if i in self.to_gen]

    def decode(self, gen_ids):
        return self.tokenizer.decode(self.vocab_ids[np.asarray(gen_ids, np.int64)])


def prefix_batch(token_lists, prompts, prefix_len):
    """``(ids, mask)`` int32 (B, prefix_len): ``[PAD]... source [SEP] prompt`` (source truncated)."""
    ids = np.zeros((len(token_lists), prefix_len), np.int32)
    mask = np.zeros_like(ids)
    for i, (toks, p) in enumerate(zip(token_lists, prompts)):
        row = list(toks)[:prefix_len - 2] + [1, int(p)]
        ids[i, prefix_len - len(row):] = row
        mask[i, prefix_len - len(row):] = 1
    return ids, mask


def gumbel_noise(rng, shape):
    """float32 standard Gumbel noise ``-log(-log U)``, U uniform in (0, 1), from a numpy generator."""
    u = rng.random(shape)
    u = np.clip(u, 1e-12, 1.0 - 1e-12)
    return (-np.log(-np.log(u))).astype(np.float32)
