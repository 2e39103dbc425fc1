"""Zero-shot Species196 (framework-free): prompt templates, the free-text answer parser, the
pluggable model interfaces, a CLIP-style scorer and a deterministic stub answer model for CI.

Two kinds of model plug in:

- :class:`ImageTextModel` (CLIP-style): ``image_features(images float32 (N, 3, H, W)) -> (N, D)`` and
  ``text_features(list of str) -> (M, D)``. :class:`ClipScorer` turns it into class logits: per class,
  the L2-normalised text features of its prompts are averaged and re-normalised (CLIP prompt
  ensembling); ``logits = logit_scale * normalise(image) @ class_embeddings.T``.
- :class:`AnswerModel` (LMM-style): ``answer(image uint8 (H, W, 3), prompt str) -> str``. The
  answer goes through :class:`AnswerParser`, which maps free text to class ids by scientific name,
  common name, alternate names and (least specific) the genus-level category name.

Parsing rule: the text and every alias are case-folded, every run of non-word characters becomes
one space, and an alias matches where it occurs as whole words. The longest matching alias wins
(so "Cydia pomonella" beats "Cydia"); aliases of equal length that name different classes give
several candidates. An answer with one candidate is a prediction; several candidates (e.g. the
genus "Cydia" shared by two classes) are counted correct at a taxonomy level only when all of them
share the true ancestor there, and never at species level; no candidate is wrong everywhere.
"""
import json
import re
from pathlib import Path

import numpy as np

from common.atomic import atomic_path
from common.metrics.species196 import LEVELS, class_ancestors, confusion_matrix, species196_metrics

SUPERCATEGORY_WORDS = {"Insecta": "insect", "Weeds": "weed", "Mollusca": "mollusc"}
PROMPT_TEMPLATES = {
    # CLIP-style class prompts (ensembled per class)
    "clip_species": ("a photo of {scientific_name}.", "a photo of a {common_name}.",
                     "a photo of {scientific_name}, a type of {supercategory_word}.",
                     "a close-up photo of the {common_name}, an invasive {supercategory_word}."),
    "clip_simple": ("a photo of {scientific_name}.",),
    # LMM questions (class-agnostic: they must not leak the answer)
    "lmm_species": ("What species is shown in this image? Answer with its scientific name or common name.",),
    "lmm_open": ("What is in this image?",),
}
ALIAS_PRIORITY = {"scientific_name": 3, "common_name": 2, "alternate": 2, "name": 1}


def normalize_text(text):
    """Case-fold; runs of non-word characters (punctuation, spaces) -> one space; stripped."""
    return re.sub(r"[\W_]+", " ", str(text).casefold()).strip()


def prompt_fields(category):
    sci = category.scientific_name or category.name
    return {"scientific_name": sci, "common_name": category.common_name or sci, "name": category.name,
            "supercategory": category.supercategory,
            "supercategory_word": SUPERCATEGORY_WORDS.get(category.supercategory, category.supercategory.lower())}


def resolve_templates(spec):
    """Templates from a registry name (``PROMPT_TEMPLATES``) or a list of format strings."""
    if isinstance(spec, str):
        if spec not in PROMPT_TEMPLATES:
            raise KeyError(f"unknown prompt template set {spec!r} (choices: {sorted(PROMPT_TEMPLATES)}) "
                           f"or give a list of strings")
        return list(PROMPT_TEMPLATES[spec])
    out = list(spec or [])
    if not out or not all(isinstance(t, str) for t in out):
        raise ValueError(f"prompt templates must be a registry name or a non-empty list of strings, got {spec!r}")
    return out


def render_prompts(templates, category):
    """The templates filled with a category's names (KeyError names an unknown placeholder)."""
    fields = prompt_fields(category)
    out = []
    for t in templates:
        try:
            out.append(t.format(**fields))
        except KeyError as e:
            raise KeyError(f"prompt template {t!r} uses unknown placeholder {e} (known: {sorted(fields)})") from None
    return out


class AnswerParser:
    """Free text -> candidate class indices (see the module docstring).

    Args:
        categories: {category id: Category}; class_ids: category id of each class index.
    """

    def __init__(self, categories, class_ids):
        self.class_ids = list(class_ids)
        self.aliases = {}
        for idx, cid in enumerate(self.class_ids):
            c = categories[cid]
            names = [(c.scientific_name, "scientific_name"), (c.common_name, "common_name"), (c.name, "name")]
            names += [(a, "alternate") for a in c.alternates]
            for text, kind in names:
                key = normalize_text(text) if text else ""
                if key:
                    self.aliases.setdefault(key, set()).add(idx)

    def matches(self, text):
        """All aliases found in ``text`` as whole words (overlapping ones included)."""
        norm = normalize_text(text)
        padded = f" {norm} "
        return sorted(a for a in self.aliases if f" {a} " in padded)

    def parse(self, text):
        """Sorted candidate class indices of the most specific (longest) matching aliases."""
        found = self.matches(text)
        if not found:
            return []
        longest = max(len(a) for a in found)
        cands = set()
        for a in found:
            if len(a) == longest:
                cands |= self.aliases[a]
        return sorted(cands)


def candidate_metrics(candidates, labels, categories, class_ids):
    """Metrics (percent) of parsed answers: top-1 = exactly one candidate and it is the truth;
    top-5 = the truth is among at most 5 candidates; per-level and macro as in the module docstring."""
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    anc = {lvl: np.array(v) for lvl, v in class_ancestors(categories, class_ids).items()}
    top1 = np.array([len(c) == 1 and c[0] == y for c, y in zip(candidates, labels)])
    top5 = np.array([0 < len(c) <= 5 and y in c for c, y in zip(candidates, labels)])
    per_level = {}
    for lvl in LEVELS:
        ok = [len(c) > 0 and all(anc[lvl][k] == anc[lvl][y] for k in c) for c, y in zip(candidates, labels)]
        per_level[lvl] = 100.0 * float(np.mean(ok))
    per_level["species"] = 100.0 * float(top1.mean())
    per_class = {int(class_ids[k]): 100.0 * float(top1[labels == k].mean()) for k in np.unique(labels)}
    sup = anc["supercategory"]
    preds = np.array([c[0] if len(c) == 1 else -1 for c in candidates])
    unique = preds >= 0
    return {"top1": 100.0 * float(top1.mean()), "top5": 100.0 * float(top5.mean()),
            "macro_acc": float(np.mean(list(per_class.values()))), "per_class": per_class,
            "per_supercategory": {s: 100.0 * float(top1[sup[labels] == s].mean()) for s in sorted(set(sup[labels]))},
            "per_level": per_level, "confusion": confusion_matrix(labels[unique], preds[unique], len(class_ids)).tolist(),
            "num_images": int(n), "answered_rate": 100.0 * float(np.mean([len(c) > 0 for c in candidates])),
            "unique_rate": 100.0 * float(unique.mean())}


class ImageTextModel:
    """Interface of a CLIP-style model (subclass it or duck-type it)."""

    def image_features(self, images):
        """float32 (N, 3, H, W) normalised images -> (N, D) features."""
        raise NotImplementedError

    def text_features(self, texts):
        """list of M strings -> (M, D) features."""
        raise NotImplementedError


class AnswerModel:
    """Interface of a generative (LMM-style) model."""

    def answer(self, image, prompt):
        """uint8 (H, W, 3) image and a question -> free-text answer."""
        raise NotImplementedError


def l2_normalize(x, axis=-1):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class ClipScorer:
    """Class logits from an :class:`ImageTextModel` with per-class prompt ensembling."""

    def __init__(self, model, class_prompts, logit_scale=100.0):
        self.model = model
        self.logit_scale = float(logit_scale)
        embs = []
        for prompts in class_prompts:
            t = l2_normalize(model.text_features(list(prompts)))
            embs.append(l2_normalize(t.mean(0)))
        self.class_embeddings = np.stack(embs)

    def logits(self, images):
        return self.logit_scale * l2_normalize(self.model.image_features(images)) @ self.class_embeddings.T


def byte_tokenize(texts, context_length=32, vocab_size=259):
    """Tokens int32 (M, context_length): 257 = start, UTF-8 bytes + 1, 258 = end, 0 = padding
    (truncated to fit). A tokenizer for models of this project that have no vocabulary file."""
    out = np.zeros((len(texts), context_length), np.int32)
    for i, t in enumerate(texts):
        ids = [257] + [b + 1 for b in str(t).encode("utf-8")][:context_length - 2] + [258]
        out[i, :len(ids)] = ids
    return out


class StubAnswerModel(AnswerModel):
    """Deterministic stand-in for an LMM (CI and the demo): a nearest-centroid classifier on 8 x 8
    thumbnails, fitted on labelled training images, that phrases its guess in one of several ways
    chosen by a hash of the image (scientific name, common name, an alternate name, the genus only,
    or no answer). It exercises the whole answer-parsing path; it is not a language model."""

    STYLES = ("This looks like {scientific_name}.", "I think it is a {common_name}.",
              "Probably {alternate}, judging by the shape.", "It belongs to the genus {name}.",
              "Sorry, I cannot tell what this is.", "Answer: {scientific_name} ({common_name})")

    def __init__(self, categories, class_ids):
        self.categories, self.class_ids = categories, list(class_ids)
        self.centroids = None

    @staticmethod
    def thumbnail(image):
        from PIL import Image
        return np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize((8, 8), Image.BILINEAR),
                          np.float64).reshape(-1) / 255.0

    def fit(self, images, labels):
        feats = np.stack([self.thumbnail(im) for im in images])
        labels = np.asarray(labels)
        self.centroids = np.stack([feats[labels == k].mean(0) if (labels == k).any() else np.full(feats.shape[1], np.inf)
                                   for k in range(len(self.class_ids))])
        return self

    def answer(self, image, prompt):
        f = self.thumbnail(image)
        k = int(np.argmin(((self.centroids - f) ** 2).sum(1)))
        c = self.categories[self.class_ids[k]]
        fields = prompt_fields(c)
        fields["alternate"] = c.alternates[0] if c.alternates else fields["common_name"]
        style = int(np.asarray(image, np.uint8).sum()) % len(self.STYLES)
        return self.STYLES[style].format(**fields)


def evaluate_zero_shot(task, run_dir=None):
    """Zero-shot metrics of ``task`` (a Species196 task with ``track: zero_shot``) on its val split.

    ``zero_shot.model: stub`` asks :class:`StubAnswerModel` (fitted on the labelled train split) the
    ``zero_shot.question`` template and parses the answers; ``clip`` scores the val batches with
    :class:`ClipScorer` over ``task.image_text_model()``. Returns ``{'metrics', 'extra'}``.
    """
    cfg = task.cfg.zero_shot
    data = task.data
    cats, ids = data.categories, data.class_ids
    if cfg.model == "stub":
        from common.data.species196_augment import base_view
        size = int(task.cfg.data.img_size)
        train = [data.train_ds.load(i) for i in range(len(data.train_ds))]
        stub = StubAnswerModel(cats, ids).fit([base_view(im, size) for im, _ in train], [t for _, t in train])
        question = resolve_templates(cfg.question)[0]
        parser = AnswerParser(cats, ids)
        rows, cands, labels = [], [], []
        for i in range(len(data.val_ds)):
            img, y = data.val_ds.load(i)
            text = stub.answer(base_view(img, size), question)
            c = parser.parse(text)
            rows.append({"file_name": data.val_ds.records[i].file_name, "label": int(ids[y]), "answer": text,
                         "candidates": [int(ids[k]) for k in c]})
            cands.append(c)
            labels.append(y)
        m = candidate_metrics(cands, labels, cats, ids)
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            with atomic_path(Path(run_dir) / "zero_shot_answers.jsonl") as tmp:
                tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        extra = {"answered_rate": m["answered_rate"], "unique_rate": m["unique_rate"], "model": "stub",
                 "question": question}
        return {"metrics": m, "extra": extra}
    model = task.image_text_model()
    templates = resolve_templates(cfg.templates)
    scorer = ClipScorer(model, [render_prompts(templates, cats[c]) for c in ids], cfg.logit_scale)
    scores, labels = [], []
    for images, y in task.val_batches:
        scores.append(scorer.logits(images))
        labels.append(y)
    m = species196_metrics(np.concatenate(scores), np.concatenate(labels), cats, ids)
    return {"metrics": m, "extra": {"model": f"clip:{cfg.clip_model}", "templates": len(templates)}}
