"""LightCLIP demo data: synthetic shapes with template captions, held-out (colour, shape) pairs for
compositional zero-shot classification, and the evaluation protocol (framework-free, numpy).

Images (H, W) = ``size`` (a multiple of 2) hold 1 or 2 objects, each a shape in {circle, square,
triangle, cross}, one of 6 colours, small or large, in one of the 4 quadrants (two objects never
share a quadrant), on a noisy dark background. Captions: "a large red circle in the top left"
(+ " and a small blue square in the bottom right"). The (colour, shape) pairs listed by
``held_out_pairs`` (``held_out_fraction`` of the 24, drawn from ``seed``) never appear in training
images. Test split: (a) single objects of every pair for zero-shot classification with the prompts
``templates`` (accuracy over all 24 classes, reported separately on held-out and seen pairs);
(b) image-caption pairs of seen pairs for image<->text retrieval R@1/5/10 (captions that are equal
strings count as relevant to each other's images).

Tokens use the CLIP BPE. ``compact_vocab`` remaps the BPE ids occurring in the captions and prompts
to 1..n with ``<|mask|>`` = n+1, SOT = n+2, EOT = n+3 (EOT stays the largest id, which the towers'
argmax pooling needs): the demo text tower and MLM head then have n+4 rows instead of 49,408.
"""
import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40),
           "purple": (150, 60, 200), "white": (235, 235, 235)}
SIZES = ("small", "large")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
TEMPLATES = ("a photo of a {colour} {shape}", "a {colour} {shape}", "a picture of a {colour} {shape}")
MEAN, STD = 0.45, 0.25


def all_pairs():
    return [(c, s) for c in COLOURS for s in SHAPES]


def held_out_pairs(fraction=0.2, seed=0):
    """Sorted list of held-out (colour, shape) pairs; every colour and shape keeps a seen pair."""
    pairs = all_pairs()
    rng = np.random.default_rng([seed, 7])
    k = int(round(fraction * len(pairs)))
    for _ in range(1000):
        pick = [pairs[i] for i in rng.choice(len(pairs), k, replace=False)]
        seen = [p for p in pairs if p not in pick]
        if {c for c, _ in seen} == set(COLOURS) and {s for _, s in seen} == set(SHAPES):
            return sorted(pick)
    raise ValueError(f"held_out_fraction={fraction} leaves some colour or shape without a seen pair")


def draw_object(img, obj, rng):
    """Paint ``obj = (colour, shape, size, quadrant)`` into ``img`` (H, W, 3) uint8 in place."""
    colour, shape, size, quad = obj
    h, w = img.shape[:2]
    qh, qw = h // 2, w // 2
    r = (0.22 if size == "small" else 0.42) * min(qh, qw)
    qi = QUADRANTS.index(quad)
    cy = (qi // 2) * qh + qh / 2 + rng.uniform(-0.08, 0.08) * qh
    cx = (qi % 2) * qw + qw / 2 + rng.uniform(-0.08, 0.08) * qw
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        m = dy ** 2 + dx ** 2 <= r ** 2
    elif shape == "square":
        m = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    elif shape == "triangle":
        m = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    else:
        t = max(r * 0.3, 0.6)
        m = ((np.abs(dy) <= t) & (np.abs(dx) <= r)) | ((np.abs(dx) <= t) & (np.abs(dy) <= r))
    img[m] = np.clip(np.array(COLOURS[colour]) + rng.integers(-15, 16, 3), 0, 255)


def caption(objects):
    parts = [f"a {size} {colour} {shape} in the {quad}" for colour, shape, size, quad in objects]
    return " and ".join(parts)


def render(objects, size, rng):
    """(3, H, W) float32 normalised image of ``objects``."""
    h, w = size
    img = rng.integers(0, 40, (h, w, 3)).astype(np.uint8)
    for obj in objects:
        draw_object(img, obj, rng)
    return ((img.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def sample_objects(rng, pairs, two_prob):
    n = 2 if rng.random() < two_prob else 1
    quads = rng.choice(len(QUADRANTS), n, replace=False)
    out = []
    for q in quads:
        colour, shape = pairs[rng.integers(len(pairs))]
        out.append((colour, shape, SIZES[rng.integers(2)], QUADRANTS[q]))
    return out


class ShapesCaptions:
    """Train and test splits of the synthetic set; every array deterministic in ``seed``.

    Attributes: ``train_images`` (N, 3, H, W) f32, ``train_captions`` list[str];
    ``zs_images`` (Z, 3, H, W), ``zs_labels`` (Z,) index into ``classes`` (all 24 pairs),
    ``zs_held`` (Z,) bool; ``test_images`` (T, 3, H, W), ``test_captions`` list[str].
    """

    def __init__(self, num_train=4096, num_test=256, size=(32, 32), held_out_fraction=0.2, two_prob=0.5,
                 zs_per_pair=8, seed=0):
        self.size = tuple(int(v) for v in size)
        if self.size[0] % 2 or self.size[1] % 2:
            raise ValueError(f"data.img_size must be even (quadrants), got {self.size}")
        self.classes = all_pairs()
        self.held_out = held_out_pairs(held_out_fraction, seed)
        seen = [p for p in self.classes if p not in self.held_out]
        rng = np.random.default_rng([seed, 1])
        objs = [sample_objects(rng, seen, two_prob) for _ in range(num_train)]
        self.train_images = np.stack([render(o, self.size, rng) for o in objs])
        self.train_captions = [caption(o) for o in objs]
        rng = np.random.default_rng([seed, 2])
        objs = [sample_objects(rng, seen, two_prob) for _ in range(num_test)]
        self.test_images = np.stack([render(o, self.size, rng) for o in objs])
        self.test_captions = [caption(o) for o in objs]
        rng = np.random.default_rng([seed, 3])
        zs, labels = [], []
        for ci, (colour, shape) in enumerate(self.classes):
            for _ in range(zs_per_pair):
                obj = (colour, shape, SIZES[rng.integers(2)], QUADRANTS[rng.integers(4)])
                zs.append(render([obj], self.size, rng))
                labels.append(ci)
        self.zs_images = np.stack(zs)
        self.zs_labels = np.array(labels, np.int64)
        self.zs_held = np.array([self.classes[i] in self.held_out for i in labels])

    def prompts(self, templates=TEMPLATES):
        """(len(templates) * 24) prompt strings, class-major."""
        return [t.format(colour=c, shape=s) for c, s in self.classes for t in templates]


class CompactVocab:
    """BPE ids of a closed set of texts remapped to 1..n; mask n+1, SOT n+2, EOT n+3, pad 0."""

    def __init__(self, tokenizer, texts):
        ids = sorted({i for t in texts for i in tokenizer.encode(t)})
        self.table = {bpe: k + 1 for k, bpe in enumerate(ids)}
        n = len(ids)
        self.mask_id, self.sot_id, self.eot_id = n + 1, n + 2, n + 3
        self.size = n + 4
        self.tokenizer = tokenizer

    def tokenize(self, texts, context_length):
        out = np.zeros((len(texts), context_length), np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id] + [self.table[i] for i in self.tokenizer.encode(text)] + [self.eot_id]
            if len(ids) > context_length:
                raise ValueError(f"caption of {len(ids)} tokens exceeds model.text_length {context_length}: {text!r}")
            out[row, :len(ids)] = ids
        return out


def retrieval_recalls(sim, caption_groups, ks=(1, 5, 10)):
    """Image->text and text->image R@k (percent, float64) for a square (images, captions) cosine
    matrix; pair i is positive, and so is any caption equal to caption i (``caption_groups``)."""
    from common.metrics.retrieval import cmc, rank_relevance

    sim = np.asarray(sim, np.float64)
    g = np.asarray(caption_groups)
    out = {}
    for name, s in (("i2t", sim), ("t2i", sim.T)):
        _, rel = rank_relevance(s, g, g)
        out.update({f"{name}_{k}": v for k, v in cmc(rel, ks).items()})
    return out


def zero_shot_accuracy(image_feats, class_feats, labels, held):
    """Top-1 accuracy (percent) of cosine nearest class, overall and on held-out / seen pairs."""
    a = image_feats / np.linalg.norm(image_feats, axis=1, keepdims=True)
    c = class_feats / np.linalg.norm(class_feats, axis=1, keepdims=True)
    pred = np.argmax(a.astype(np.float64) @ c.T.astype(np.float64), axis=1)
    hit = pred == labels
    return {"zs_acc": float(100 * hit.mean()), "zs_acc_held": float(100 * hit[held].mean()),
            "zs_acc_seen": float(100 * hit[~held].mean())}


class LightCLIPData:
    """Train batches and evaluation of one run, identical for both frameworks.

    Config keys: ``data.*``, ``model.{text_length, image_encoder}``, ``loss.{soft_labels, alpha_max,
    alpha_schedule}``, ``train.{seed, epochs, max_steps}``.
    Batches: ``(images (B,3,H,W) f32, ids (B,L) i32, alpha (B,) f32, mlm_ids (B,L) i32,
    mlm_labels (B,L) i32, match (B,L,M) f32 zeros)``; the match slot is filled by the task's train
    step from the current model (``common.lightclip_ops.token_matching``).
    """

    def __init__(self, cfg):
        from common.lightclip_ops import encoder_stride
        from common.text.clip_tokenizer import CLIPTokenizer

        d = cfg.data
        self.cfg = cfg
        self.size = tuple(int(v) for v in d.img_size)
        stride = encoder_stride(cfg.model.image_encoder)
        if self.size[0] % stride or self.size[1] % stride:
            raise ValueError(f"data.img_size {self.size} must be a multiple of {stride} for model.image_encoder="
                             f"{cfg.model.image_encoder}")
        self.num_patches = (self.size[0] // stride) * (self.size[1] // stride)
        self.batch_size = int(d.batch_size)
        self.seed = int(cfg.train.seed)
        self.text_length = int(cfg.model.text_length)
        print(f"lightclip data: built-in synthetic shapes-with-captions set ({d.num_train} train, {d.num_test} "
              f"retrieval test images, {self.size[0]}x{self.size[1]})", flush=True)
        self.set = ShapesCaptions(int(d.num_train), int(d.num_test), self.size, float(d.held_out_fraction),
                                  float(d.two_object_prob), int(d.zs_per_pair), self.seed)
        tok = CLIPTokenizer(mask_token=True)
        if d.compact_vocab:
            vocab = CompactVocab(tok, self.set.train_captions + self.set.test_captions + self.set.prompts())
            self.tokenize = vocab.tokenize
            self.vocab_size, self.mask_id, self.sot_id, self.eot_id = vocab.size, vocab.mask_id, vocab.sot_id, \
                vocab.eot_id
        else:
            self.tokenize = lambda texts, n: tok.tokenize(texts, n, truncate=False)
            self.vocab_size, self.mask_id, self.sot_id, self.eot_id = 49408, tok.mask_id, tok.sot_id, tok.eot_id
        self.train_ids = self.tokenize(self.set.train_captions, self.text_length).astype(np.int32)
        self.test_ids = self.tokenize(self.set.test_captions, self.text_length).astype(np.int32)
        self.prompt_ids = self.tokenize(self.set.prompts(), self.text_length).astype(np.int32)

    def steps_per_epoch(self):
        n = len(self.set.train_captions) // self.batch_size
        if n == 0:
            raise ValueError(f"data.batch_size={self.batch_size} exceeds data.num_train={len(self.set.train_captions)}")
        return n

    def total_steps(self):
        t = self.cfg.train
        total = int(t.epochs) * self.steps_per_epoch()
        return min(total, int(t.max_steps)) if int(t.max_steps) > 0 else total

    def alpha(self, step):
        from common.lightclip_ops import soft_label_alpha

        lo = self.cfg.loss
        if not lo.soft_labels:
            return 0.0
        return soft_label_alpha(step, self.total_steps(), float(lo.alpha_max), lo.alpha_schedule)

    def train_batches(self, epoch):
        from common.text.clip_tokenizer import random_mask_tokens

        rng = np.random.default_rng([self.seed, int(epoch)])
        perm = rng.permutation(len(self.set.train_captions))
        spe, b = self.steps_per_epoch(), self.batch_size
        for step in range(spe):
            idx = perm[step * b:(step + 1) * b]
            ids = self.train_ids[idx]
            mlm_ids, mlm_labels = random_mask_tokens(ids, rng, self.mask_id)
            alpha = np.full((b,), self.alpha(int(epoch) * spe + step), np.float32)
            match = np.zeros((b, self.text_length, self.num_patches), np.float32)
            yield (self.set.train_images[idx], ids, alpha, mlm_ids.astype(np.int32), mlm_labels.astype(np.int32),
                   match)

    def evaluate(self, encode_images, encode_texts, batch=256):
        """Zero-shot accuracy (all / held-out / seen pairs) and retrieval R@1/5/10 (i2t, t2i)."""
        def run(fn, arr):
            return np.concatenate([fn(arr[i:i + batch]) for i in range(0, len(arr), batch)]).astype(np.float64)

        n_t = len(TEMPLATES)
        prompts = run(encode_texts, self.prompt_ids)
        prompts = prompts / np.linalg.norm(prompts, axis=1, keepdims=True)
        classes = prompts.reshape(-1, n_t, prompts.shape[1]).mean(1)
        out = zero_shot_accuracy(run(encode_images, self.set.zs_images), classes, self.set.zs_labels,
                                 self.set.zs_held)
        img = run(encode_images, self.set.test_images)
        txt = run(encode_texts, self.test_ids)
        img /= np.linalg.norm(img, axis=1, keepdims=True)
        txt /= np.linalg.norm(txt, axis=1, keepdims=True)
        _, groups = np.unique(np.array(self.set.test_captions), return_inverse=True)
        out.update(retrieval_recalls(img @ txt.T, groups))
        return out
