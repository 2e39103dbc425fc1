"""Species196 metrics (macro, per-supercategory, per-level, confusion, report, PNG) and the
zero-shot parser / scorer, against hand-computed values."""
import numpy as np
import pytest
from PIL import Image

from common.data.species196 import Category
from common.data.species196_tracks import knn_scores
from common.metrics.species196 import plot_confusion, report_markdown, species196_metrics
from common.zero_shot import (AnswerParser, ClipScorer, StubAnswerModel, byte_tokenize, candidate_metrics,
                              render_prompts, resolve_templates)


def _cat(cid, name, sup, sci, common, alts, tax):
    return Category(cid, name, sup, sci, common, tuple(alts), dict(zip(("class", "order", "family", "genus"), tax)))


CATS = {
    3: _cat(3, "Cydia", "Insecta", "Cydia pomonella", "codling moth", ["apple worm"],
            ("Insecta", "Lepidoptera", "Tortricidae", "Cydia")),
    7: _cat(7, "Cydia", "Insecta", "Cydia funebrana", "plum fruit moth", [],
            ("Insecta", "Lepidoptera", "Tortricidae", "Cydia")),
    11: _cat(11, "Solanum", "Weeds", "Solanum rostratum", "buffalobur", ["buffalo bur"],
             ("Magnoliopsida", "Solanales", "Solanaceae", "Solanum")),
    25: _cat(25, "Helix", "Mollusca", "Helix pomatia", "Roman snail", [],
             ("Gastropoda", "Stylommatophora", "Helicidae", "Helix")),
}
IDS = [3, 7, 11, 25]


def test_metrics_match_hand_computation():
    labels = np.array([0, 0, 1, 1, 2, 3, 3, 3])
    preds = np.array([0, 1, 0, 1, 2, 3, 2, 3])
    logits = np.full((8, 4), -1.0)
    logits[np.arange(8), preds] = 2.0
    logits[6, 3] = 1.0                       # sample 6: true class second -> top-2 hit
    m = species196_metrics(logits, labels, CATS, IDS)
    assert m["top1"] == pytest.approx(100 * 5 / 8)
    assert m["top5"] == pytest.approx(100.0)
    assert m["macro_acc"] == pytest.approx(100 * np.mean([1 / 2, 1 / 2, 1, 2 / 3]))
    assert m["per_supercategory"] == pytest.approx({"Insecta": 50.0, "Mollusca": 100 * 2 / 3, "Weeds": 100.0})
    # the two Cydia classes differ only at species level: confusing them is right at genus and above
    assert m["per_level"]["genus"] == pytest.approx(100 * 7 / 8)
    assert m["per_level"]["species"] == pytest.approx(m["top1"])
    assert m["per_level"]["supercategory"] == pytest.approx(100 * 7 / 8)
    cm = np.zeros((4, 4), int)
    for y, p in zip(labels, preds):
        cm[y, p] += 1
    assert m["confusion"] == cm.tolist()
    text = report_markdown(m, CATS, IDS)
    assert "| 1 | 7 | Cydia | Cydia funebrana | Insecta | 50.00 |" in text and "| genus | 87.50 |" in text


def test_confusion_png(tmp_path):
    path = plot_confusion([[3, 1], [0, 4]], ["a", "b"], tmp_path / "c.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200


def test_knn_scores_match_brute_force():
    rng = np.random.default_rng(0)
    tr, q = rng.normal(size=(12, 5)), rng.normal(size=(4, 5))
    lab = rng.integers(0, 3, 12)
    got = knn_scores(tr, lab, q, 3, k=4, temperature=0.5)
    for i in range(4):
        sim = [float(q[i] @ t / np.linalg.norm(q[i]) / np.linalg.norm(t)) for t in tr]
        top = sorted(range(12), key=lambda j: -sim[j])[:4]
        ref = np.zeros(3)
        for j in top:
            ref[lab[j]] += np.exp(sim[j] / 0.5)
        np.testing.assert_allclose(got[i], ref, rtol=1e-10)


@pytest.mark.parametrize("text, expected", [
    ("This looks like Cydia pomonella.", [0]),
    ("i think it's a CODLING-MOTH!", [0]),
    ("Probably an apple worm", [0]),
    ("Answer: cydia funebrana (plum fruit moth)", [1]),
    ("It belongs to the genus Cydia.", [0, 1]),             # genus name shared by two classes
    ("buffalo bur, or Solanum rostratum", [2]),
    ("a Roman snail", [3]),
    ("Sorry, I cannot tell what this is.", []),
    ("Cydiapomonella", []),                                  # whole words only
])
def test_answer_parser(text, expected):
    assert AnswerParser(CATS, IDS).parse(text) == expected


def test_parser_keeps_prefixed_duplicate_names_apart():
    cats = {1: Category(1, "欧洲Rhynchites", "Insecta"), 2: Category(2, "日本Rhynchites", "Insecta"),
            3: Category(3, "Rhynchites", "Insecta")}
    p = AnswerParser(cats, [1, 2, 3])
    assert p.parse("这是日本Rhynchites") == [] and p.parse("这是 日本Rhynchites。") == [1]
    assert p.parse("It is Rhynchites") == [2]


def test_candidate_metrics_levels():
    labels = [0, 1, 2, 3]
    cands = [[0], [0, 1], [], [3]]
    m = candidate_metrics(cands, labels, CATS, IDS)
    assert m["top1"] == 50.0 and m["per_level"]["species"] == 50.0
    assert m["per_level"]["genus"] == 75.0 and m["per_level"]["supercategory"] == 75.0
    assert m["answered_rate"] == 75.0 and m["unique_rate"] == 50.0 and m["top5"] == 75.0


class _OracleModel:
    """Image features: one-hot of the class encoded in pixel (0, 0); text features: one-hot of the
    class whose scientific or common name the prompt contains, plus a shared nuisance direction."""

    def __init__(self, names):
        self.names = names

    def image_features(self, images):
        k = images[:, 0, 0, 0].astype(int)
        return np.eye(len(self.names) + 1)[k] * 3.0

    def text_features(self, texts):
        out = []
        for t in texts:
            v = np.zeros(len(self.names) + 1)
            v[[i for i, ns in enumerate(self.names) if any(n in t for n in ns)][0]] = 2.0
            v[-1] = 1.0 + len(t) % 3
            out.append(v)
        return np.stack(out)


def test_clip_scorer_prompt_ensembling_matches_numpy():
    names = [(CATS[c].scientific_name, CATS[c].common_name) for c in IDS]
    model = _OracleModel(names)
    templates = resolve_templates("clip_species")
    prompts = [render_prompts(templates, CATS[c]) for c in IDS]
    assert prompts[1][0] == "a photo of Cydia funebrana." and "an invasive insect" in prompts[0][3]
    scorer = ClipScorer(model, prompts, logit_scale=50.0)
    images = np.zeros((4, 3, 2, 2), np.float32)
    images[:, 0, 0, 0] = [2, 0, 3, 1]
    logits = scorer.logits(images)
    assert logits.argmax(1).tolist() == [2, 0, 3, 1]
    emb = []
    for ps in prompts:
        t = np.stack([model.text_features([p])[0] for p in ps])
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        e = t.mean(0)
        emb.append(e / np.linalg.norm(e))
    img = model.image_features(images)
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    np.testing.assert_allclose(logits, 50.0 * img @ np.stack(emb).T, rtol=1e-12)
    with pytest.raises(KeyError, match="unknown placeholder"):
        render_prompts(["a {colour} photo"], CATS[3])


def test_byte_tokenizer_and_stub_answers_are_deterministic():
    tok = byte_tokenize(["ab", "é"], 6)
    assert tok.tolist() == [[257, 98, 99, 258, 0, 0], [257, 0xC3 + 1, 0xA9 + 1, 258, 0, 0]]
    rng = np.random.default_rng(0)
    imgs = [np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 200, 210)]
    stub = StubAnswerModel(CATS, IDS).fit(imgs, [0, 0, 2, 2])
    probe = rng.integers(195, 215, (8, 8, 3)).astype(np.uint8)
    a = stub.answer(probe, "q")
    assert a == stub.answer(probe, "q")
    assert AnswerParser(CATS, IDS).parse(a) in ([2], [])
