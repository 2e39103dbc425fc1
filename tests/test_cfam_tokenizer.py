"""CLIP BPE tokenizer (common/text/clip_tokenizer.py) against the reference tokenizer shipped in
clip-anytorch (``clip/simple_tokenizer.py``, loaded from its file), the mask-token convention,
truncation and the MLM masking statistics."""
import importlib.util
import os
import sys

import numpy as np
import pytest

from common.text.clip_tokenizer import CLIPTokenizer, default_bpe_path, random_mask_tokens

CAPTIONS = [
    "A woman wearing a white T-shirt, blue jeans and black shoes; she's carrying a red bag.",
    "The man's jacket is dark-green &amp; his trousers are grey (knee-length), size 42!",
    "Café   résumé naïve — 3 people, 12 o'clock; émoji ☂ and CJK 行人",
    "jekyll and hyde",
    "",
]


@pytest.fixture(scope="module")
def reference():
    folder = list(importlib.util.find_spec("clip").submodule_search_locations)[0]
    spec = importlib.util.spec_from_file_location("openai_simple_tokenizer", os.path.join(folder, "simple_tokenizer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(os.path.join(folder, "bpe_simple_vocab_16e6.txt.gz"))


@pytest.fixture(scope="module")
def tok_openai():
    return CLIPTokenizer(mask_token=False)


@pytest.fixture(scope="module")
def tok():
    return CLIPTokenizer(mask_token=True)


def test_vocabulary_file_is_found_without_importing_clip():
    assert default_bpe_path().endswith(os.path.join("clip", "bpe_simple_vocab_16e6.txt.gz"))
    assert "clip" not in sys.modules


def test_openai_convention_matches_reference_ids(reference, tok_openai):
    assert tok_openai.vocab_size == len(reference.encoder) == 49408
    assert (tok_openai.sot_id, tok_openai.eot_id) == (49406, 49407)
    for text in CAPTIONS:
        assert tok_openai.encode(text) == reference.encode(text), text
    ids = tok_openai.tokenize(CAPTIONS[:2], context_length=77)
    for row, text in zip(ids, CAPTIONS[:2]):
        expect = [49406] + reference.encode(text) + [49407]
        assert row[:len(expect)].tolist() == expect and not row[len(expect):].any()


def test_mask_convention_keeps_ids_and_adds_mask(reference, tok):
    assert tok.vocab_size == 49408
    assert (tok.mask_id, tok.sot_id, tok.eot_id) == (49405, 49406, 49407)
    for text in CAPTIONS[:3]:
        assert tok.encode(text) == reference.encode(text)
    jek = tok.encode("jekyll")               # its merged symbol (id 49405 in OpenAI) no longer exists
    assert reference.encode("jekyll") == [49405] and 49405 not in jek and len(jek) >= 2
    assert tok.encode("<|mask|> shirt")[0] == 49405
    assert tok.decode(tok.encode("red shirt, blue jeans")).strip() == "red shirt , blue jeans"


def test_long_captions_are_truncated_with_eot_or_rejected(tok):
    long = " ".join(["striped"] * 200)
    ids = tok.tokenize([long, "a man"], context_length=168)
    assert ids.shape == (2, 168) and ids.dtype == np.int64
    assert ids[0, 0] == 49406 and ids[0, -1] == 49407 and (ids[0] > 0).all()
    assert ids[0].argmax() == 167                       # EOT stays the argmax (feature position)
    assert ids[1, :4].tolist() == [49406] + tok.encode("a man") + [49407] and not ids[1, 4:].any()
    with pytest.raises(ValueError, match="exceeds context_length 10"):
        tok.tokenize(long, context_length=10, truncate=False)


def test_random_mask_tokens_follows_the_recipe(tok):
    ids = tok.tokenize(["a person with long black hair wearing a red coat and blue jeans"] * 400, 24)
    rng = np.random.default_rng(0)
    masked, labels = random_mask_tokens(ids, rng, tok.mask_id)
    special = (ids == 0) | (ids == tok.sot_id) | (ids == tok.eot_id)
    assert not labels[special].any() and (masked[special] == ids[special]).all()
    sel = labels > 0
    assert (labels[sel] == ids[sel]).all()
    cand = (ids > 0) & (ids < tok.mask_id)
    frac = sel.sum() / cand.sum()
    assert 0.13 < frac < 0.17                           # 15 % selection
    to_mask = (masked[sel] == tok.mask_id).mean()
    unchanged = (masked[sel] == ids[sel]).mean()
    assert 0.75 < to_mask < 0.85 and 0.06 < unchanged < 0.14
    assert (masked[~sel & cand] == ids[~sel & cand]).all()
    assert masked[cand].max() <= tok.mask_id and masked[cand].min() >= 1
    one = tok.tokenize(["hi"], 8)                       # nothing selected -> position 1 is masked
    m1, l1 = random_mask_tokens(one, np.random.default_rng(5), tok.mask_id, prob=0.0)
    assert m1[0, 1] == tok.mask_id and l1[0, 1] == one[0, 1] and l1.sum() == one[0, 1]
