"""Text-based person retrieval data: annotation loaders for UFine6926, UFine3C, CUHK-PEDES,
ICFG-PEDES and RSTPReid, a built-in synthetic person set ("UFine-toy"), image preprocessing and
numpy batches shared by both frameworks.

Annotation formats (``<root>/<DIR>/<file>``, a JSON list of records):

| name        | DIR          | file                 | image field | id          | splits       |
|-------------|--------------|----------------------|-------------|-------------|--------------|
| cuhk_pedes  | CUHK-PEDES   | reid_raw.json        | file_path   | 1-based     | train/val/test |
| icfg_pedes  | ICFG-PEDES   | ICFG-PEDES.json (or ICFG_PEDES.json) | file_path | 0-based | train/test |
| rstpreid    | RSTPReid     | data_captions.json   | img_path    | 0-based     | train/val/test |
| ufine6926   | UFine6926    | ufine6926.json       | file_path   | 1-based     | train/val/test |
| ufine3c     | UFine3C      | ufine3c.json         | file_path   | any         | test only (+ ``source``) |

Images live in ``<root>/<DIR>/imgs/`` (CUHK/ICFG/RSTP, IRRA layout) or ``<root>/<DIR>/`` (UFine: the
README's ``file_path`` already starts with ``images/``). The UFine file names are not published
[unverified]; ``annotation_file`` overrides any default. A split other than train/test is val.
Training identities are relabelled to 0..P-1 in order of first appearance of sorted ids.
"""
import json
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from common.text.clip_tokenizer import random_mask_tokens

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DATASETS = {
    "cuhk_pedes": dict(dir="CUHK-PEDES", files=("reid_raw.json",), image_dir="imgs", image_key="file_path"),
    "icfg_pedes": dict(dir="ICFG-PEDES", files=("ICFG-PEDES.json", "ICFG_PEDES.json"), image_dir="imgs",
                       image_key="file_path"),
    "rstpreid": dict(dir="RSTPReid", files=("data_captions.json",), image_dir="imgs", image_key="img_path"),
    "ufine6926": dict(dir="UFine6926", files=("ufine6926.json", "UFine6926.json"), image_dir="",
                      image_key="file_path"),
    "ufine3c": dict(dir="UFine3C", files=("ufine3c.json", "UFine3C.json"), image_dir="", image_key="file_path"),
}


@dataclass
class Split:
    """One split: images (path or array), their pids, and captions with the index of their image.

    ``image_pids`` (N,) int64; ``caption_image`` (C,) int64 index into images; ``caption_pids``
    (C,) int64; ``caption_kind`` (C,) str tag (e.g. 'fine'/'coarse' for the synthetic set, the
    UFine3C ``source`` otherwise).
    """
    images: list = field(default_factory=list)
    image_pids: np.ndarray = None
    captions: list = field(default_factory=list)
    caption_image: np.ndarray = None
    caption_pids: np.ndarray = None
    caption_kind: list = field(default_factory=list)

    @property
    def num_ids(self):
        return int(np.unique(self.image_pids).size) if self.image_pids is not None else 0


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the annotation JSON ({err})") from err
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def find_annotation(name, root, annotation_file=None):
    """Path of the annotation file of dataset ``name`` under ``root`` (see the module table)."""
    if name not in DATASETS:
        raise ValueError(f"unknown person-retrieval dataset {name!r}; choose from {sorted(DATASETS)} or 'synthetic'")
    spec = DATASETS[name]
    folder = os.path.join(root, spec["dir"])
    candidates = [annotation_file] if annotation_file else spec["files"]
    for cand in candidates:
        path = cand if os.path.isabs(cand) else os.path.join(folder, cand)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{name}: no annotation file among {[os.path.join(folder, c) for c in candidates]}; "
                            "set data.root to the folder holding "
                            f"{spec['dir']}/ or data.annotation_file to the JSON file")


def parse_records(name, records, path, image_root):
    """Records -> ``{split: Split}``; every field is checked and a bad record is named by index."""
    spec = DATASETS[name]
    key = spec["image_key"]
    raw = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: record {i} is a {type(rec).__name__}, expected an object")
        missing = [k for k in ("id", key, "captions") if k not in rec]
        if name != "ufine3c" and "split" not in rec:
            missing.append("split")
        if missing:
            hint = " (RSTPReid names it 'img_path')" if key == "file_path" and "img_path" in rec else ""
            raise ValueError(f"{path}: record {i} lacks field(s) {missing}{hint}; it has {sorted(rec)}")
        caps = rec["captions"]
        if isinstance(caps, str) or not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"{path}: record {i} field 'captions' must be a list of strings")
        try:
            pid = int(rec["id"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: record {i} field 'id' must be an integer, got {rec['id']!r}") from None
        split = "test" if name == "ufine3c" else str(rec["split"])
        split = split if split in ("train", "test") else "val"
        if name == "cuhk_pedes":
            pid -= 1
        kind = str(rec.get("source", name))
        raw.setdefault(split, []).append((pid, os.path.join(image_root, rec[key]), caps, kind))
    splits = {}
    for split, items in raw.items():
        s = Split()
        pids = []
        for img_idx, (pid, img, caps, kind) in enumerate(items):
            s.images.append(img)
            pids.append(pid)
            for c in caps:
                s.captions.append(c)
                s.caption_kind.append(kind)
        s.image_pids = np.asarray(pids, np.int64)
        s.caption_image = np.repeat(np.arange(len(items)), [len(it[2]) for it in items]).astype(np.int64)
        s.caption_pids = s.image_pids[s.caption_image]
        splits[split] = s
    if "train" in splits:
        relabel_train(splits["train"])
    return splits


def relabel_train(split):
    """Map the train pids onto 0..P-1 (sorted order), in place."""
    uniq, inv = np.unique(split.image_pids, return_inverse=True)
    split.image_pids = inv.astype(np.int64)
    split.caption_pids = split.image_pids[split.caption_image]
    return len(uniq)


def load_person_retrieval(name, root, annotation_file=None):
    """``{split: Split}`` of a dataset in its public annotation format (see the module docstring)."""
    path = find_annotation(name, root, annotation_file)
    spec = DATASETS[name]
    image_root = os.path.join(root, spec["dir"], spec["image_dir"])
    return parse_records(name, _read_json(path), path, image_root)


# ---------------------------------------------------------------- synthetic "UFine-toy" persons
UPPER = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
         "white": (235, 235, 235), "purple": (130, 50, 160)}
LOWER = {"black": (25, 25, 25), "blue": (50, 80, 160), "grey": (130, 130, 130), "brown": (120, 75, 35),
         "white": (225, 225, 225)}
SHOES = {"black": (15, 15, 15), "white": (245, 245, 245), "red": (210, 30, 30)}
ATTRIBUTES = ("upper", "lower", "shoes", "bag", "hat", "hair", "stripes")
_CHOICES = (tuple(UPPER), tuple(LOWER), tuple(SHOES), (False, True), (False, True), ("short", "long"), (False, True))


def synthetic_identities(num_ids, seed=0):
    """``num_ids`` distinct attribute tuples (see ``ATTRIBUTES``), drawn without replacement."""
    sizes = [len(c) for c in _CHOICES]
    total = int(np.prod(sizes))
    if num_ids > total:
        raise ValueError(f"synthetic set has at most {total} distinct identities, asked for {num_ids}")
    codes = np.random.default_rng(seed).choice(total, size=num_ids, replace=False)
    out = []
    for code in codes:
        idx = np.unravel_index(int(code), sizes)
        out.append(tuple(c[i] for c, i in zip(_CHOICES, idx)))
    return out


def draw_person(attrs, rng, height=64, width=32):
    """(H, W, 3) uint8 glyph of a person with the given attributes; background, position and
    noise come from ``rng``."""
    upper, lower, shoes, bag, hat, hair, stripes = attrs
    img = np.empty((height, width, 3), np.float32)
    img[:] = rng.uniform(60, 190, 3)
    sy, sx = height / 64.0, width / 32.0
    dy, dx = rng.integers(-2, 3), rng.integers(-2, 3)

    def box(y0, y1, x0, x1, colour):
        ys = slice(max(0, int(round(y0 * sy)) + dy), max(0, int(round(y1 * sy)) + dy))
        xs = slice(max(0, int(round(x0 * sx)) + dx), max(0, int(round(x1 * sx)) + dx))
        img[ys, xs] = colour

    box(6, 15, 12, 20, (225, 180, 150))                       # head
    box(5, 8 if hair == "short" else 20, 11, 21, (45, 30, 20))  # hair
    box(6, 15, 13, 19, (225, 180, 150))                       # face over the hair
    if hat:
        box(2, 6, 10, 22, (240, 120, 20))
    box(16, 36, 9, 23, UPPER[upper])                          # torso
    if stripes:
        for y in range(18, 36, 4):
            box(y, y + 1, 9, 23, (20, 20, 20))
    box(36, 56, 10, 22, LOWER[lower])                         # legs
    box(44, 56, 15, 17, img[0, 0])                            # gap between the legs
    box(56, 60, 9, 15, SHOES[shoes])
    box(56, 60, 17, 23, SHOES[shoes])
    if bag:
        box(22, 34, 23, 28, (110, 60, 20))
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def fine_caption(attrs, rng):
    """A caption naming all seven attributes (template order varies with ``rng``)."""
    upper, lower, shoes, bag, hat, hair, stripes = attrs
    parts = [f"a {'striped' if stripes else 'plain'} {upper} shirt", f"{lower} trousers", f"{shoes} shoes"]
    rng.shuffle(parts)
    head = f"a person with {hair} hair and {'a hat' if hat else 'no hat'}"
    tail = "carrying a brown bag" if bag else "carrying no bag"
    return f"{head}, wearing {parts[0]}, {parts[1]} and {parts[2]}, {tail}."


def coarse_caption(attrs, rng):
    """A caption naming two or three of the attributes (always the upper colour)."""
    upper, lower, shoes, bag, hat, hair, stripes = attrs
    extra = [f"{lower} trousers", f"{shoes} shoes", "a bag" if bag else "no bag", "a hat" if hat else "no hat",
             f"{hair} hair"]
    picks = rng.choice(len(extra), size=int(rng.integers(1, 3)), replace=False)
    return f"a person in a {upper} shirt with " + " and ".join(extra[i] for i in sorted(picks)) + "."


def one_attribute_neighbours(identities):
    """Boolean (P,) : identity i has another identity in the list differing in exactly one attribute."""
    a = np.asarray([[str(v) for v in t] for t in identities])
    diff = (a[:, None, :] != a[None, :, :]).sum(-1)
    return (diff == 1).any(axis=1)


def synthetic_person_retrieval(num_ids=300, images_per_id=4, test_fraction=0.2, height=64, width=32, seed=0):
    """Built-in "UFine-toy" data: ``{'train': Split, 'test': Split}`` with images as uint8 arrays.

    Each image has a fine caption (all attributes) and a coarse one (2-3 attributes), tagged in
    ``caption_kind``; identities are split disjointly (the last ``test_fraction`` of them test).
    ``Split.hard`` (test) marks captions whose identity has a one-attribute neighbour in the test set.
    """
    ids = synthetic_identities(num_ids, seed)
    rng = np.random.default_rng(seed + 1)
    n_test = max(2, int(round(num_ids * test_fraction)))
    parts = {"train": ids[:num_ids - n_test], "test": ids[num_ids - n_test:]}
    out = {}
    for split, idents in parts.items():
        s = Split()
        pids, cap_img = [], []
        for pid, attrs in enumerate(idents):
            for _ in range(images_per_id):
                s.images.append(draw_person(attrs, rng, height, width))
                pids.append(pid)
                for kind, fn in (("fine", fine_caption), ("coarse", coarse_caption)):
                    s.captions.append(fn(attrs, rng))
                    s.caption_kind.append(kind)
                    cap_img.append(len(s.images) - 1)
        s.image_pids = np.asarray(pids, np.int64)
        s.caption_image = np.asarray(cap_img, np.int64)
        s.caption_pids = s.image_pids[s.caption_image]
        s.identities = idents
        s.hard = one_attribute_neighbours(idents)[s.caption_pids]
        out[split] = s
    return out


# ---------------------------------------------------------------- images and batches
def read_image(source):
    """A path (decoded with PIL, RGB) or an (H, W, 3) uint8 array -> (H, W, 3) uint8."""
    if isinstance(source, np.ndarray):
        return source
    from PIL import Image
    with Image.open(source) as im:
        return np.asarray(im.convert("RGB"))


def resize_normalize(img, size, mean=CLIP_MEAN, std=CLIP_STD):
    """(H, W, 3) uint8 -> (3, size[0], size[1]) float32: bilinear resize (PIL), /255, CLIP mean/std."""
    from PIL import Image
    h, w = size
    if img.shape[:2] != (h, w):
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    x = img.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def augment(x, rng, img_aug=False, mean=CLIP_MEAN, std=CLIP_STD):
    """Train augmentation on a normalised (3, H, W) image, every draw from ``rng``: h-flip 0.5; with
    ``img_aug`` also pad 10 + random crop and random erasing (p 0.5, area 0.02-0.4, aspect 0.3-3.3,
    filled with the mean, i.e. 0 after normalisation)."""
    if rng.random() < 0.5:
        x = x[:, :, ::-1]
    if img_aug:
        c, h, w = x.shape
        padded = np.zeros((c, h + 20, w + 20), np.float32)
        padded[:, 10:10 + h, 10:10 + w] = x
        oy, ox = rng.integers(0, 21, 2)
        x = padded[:, oy:oy + h, ox:ox + w].copy()
        if rng.random() < 0.5:
            for _ in range(10):
                area = rng.uniform(0.02, 0.4) * h * w
                aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
                eh, ew = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
                if 0 < eh < h and 0 < ew < w:
                    y0, x0 = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
                    x[:, y0:y0 + eh, x0:x0 + ew] = 0.0
                    break
    return np.ascontiguousarray(x)


class ImageStore:
    """Images of a split as normalised (3, H, W) float32, by index.

    ``preload=True`` decodes everything once (the synthetic set); otherwise images are decoded on
    demand. An unreadable file is replaced by the split's image 0 and counted in ``skipped`` (one
    warning per file), never a crash mid-epoch.
    """

    def __init__(self, sources, size, preload=False):
        self.sources = list(sources)
        self.size = tuple(size)
        self.skipped = []
        self.arrays = np.stack([self._load(i) for i in range(len(self.sources))]) if preload else None

    def _load(self, i):
        try:
            return resize_normalize(read_image(self.sources[i]), self.size)
        except (OSError, ValueError) as err:
            self.skipped.append(self.sources[i])
            warnings.warn(f"unreadable image {self.sources[i]} ({err}); using image 0 instead "
                          f"({len(self.skipped)} skipped so far)")
            if i == 0:
                raise ValueError(f"image 0 of the split is unreadable too: {self.sources[0]}") from err
            return self[0]

    def __len__(self):
        return len(self.sources)

    def __getitem__(self, i):
        return self.arrays[i] if self.arrays is not None else self._load(int(i))

    def batch(self, indices):
        """(len(indices), 3, H, W) float32."""
        return np.stack([self[i] for i in indices]).astype(np.float32)


class RetrievalData:
    """Train batches and the test split of one run, identical for both frameworks.

    Config keys read: ``data.{name, root, annotation_file, img_size, batch_size, eval_batch_size,
    img_aug, synthetic_ids, synthetic_images_per_id}``, ``model.text_length``, ``train.seed``.
    ``data.root: null`` (or name ``synthetic``) uses the built-in synthetic persons.
    """

    def __init__(self, cfg):
        from common.text.clip_tokenizer import CLIPTokenizer

        d = cfg.data
        self.size = tuple(int(v) for v in d.img_size)
        self.batch_size = int(d.batch_size)
        self.eval_batch_size = int(d.eval_batch_size or d.batch_size)
        self.img_aug = bool(d.img_aug)
        self.seed = int(cfg.train.seed)
        self.text_length = int(cfg.model.text_length)
        self.synthetic = d.name == "synthetic" or d.root is None
        if self.synthetic:
            print(f"cfam data: no dataset configured (data.root is null or data.name=synthetic): using the built-in "
                  f"synthetic person set ({d.synthetic_ids} identities x {d.synthetic_images_per_id} images, fine and "
                  "coarse captions)", flush=True)
            splits = synthetic_person_retrieval(int(d.synthetic_ids), int(d.synthetic_images_per_id),
                                                height=self.size[0], width=self.size[1], seed=self.seed)
        else:
            splits = load_person_retrieval(d.name, d.root, d.annotation_file)
        for need in ("train", "test"):
            if need not in splits:
                raise ValueError(f"data.name={d.name}: the annotations have no '{need}' split "
                                 f"(found {sorted(splits)}); UFine3C is evaluation-only")
        self.train, self.test = splits["train"], splits["test"]
        self.num_classes = self.train.num_ids
        self.tokenizer = CLIPTokenizer(mask_token=True)
        self.train_tokens = self.tokenizer.tokenize(self.train.captions, self.text_length).astype(np.int32)
        self.test_tokens = self.tokenizer.tokenize(self.test.captions, self.text_length).astype(np.int32)
        self.train_images = ImageStore(self.train.images, self.size, preload=self.synthetic)
        self.test_images = ImageStore(self.test.images, self.size, preload=self.synthetic)

    def steps_per_epoch(self):
        n = len(self.train.captions) // self.batch_size
        if n == 0:
            raise ValueError(f"data.batch_size={self.batch_size} exceeds the {len(self.train.captions)} "
                             "training captions")
        return n

    def train_batches(self, epoch):
        """Yields ``(images (B,3,H,W) f32, caption_ids (B,L) i32, pids (B,) i32, mlm_ids (B,L) i32,
        mlm_labels (B,L) i32)``; order, flips, crops, erasing and MLM masks depend only on (seed, epoch)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        perm = rng.permutation(len(self.train.captions))
        mask_id = self.tokenizer.mask_id
        for step in range(self.steps_per_epoch()):
            idx = perm[step * self.batch_size:(step + 1) * self.batch_size]
            images = np.stack([augment(self.train_images[i], rng, self.img_aug)
                               for i in self.train.caption_image[idx]]).astype(np.float32)
            ids = self.train_tokens[idx]
            mlm_ids, mlm_labels = random_mask_tokens(ids, rng, mask_id)
            yield (images, ids, self.train.caption_pids[idx].astype(np.int32), mlm_ids.astype(np.int32),
                   mlm_labels.astype(np.int32))

    def evaluate(self, encode_images, encode_texts, msd_order="ranked"):
        """Text-to-image metrics on the test split.

        ``encode_images(images (n,3,H,W) f32) -> (n, D)`` and ``encode_texts(ids (n,L) i32) -> (n, D)``
        return numpy features. Returns the metrics of :func:`retrieval_metrics` over all queries, and
        with a ``<kind>_`` prefix per caption kind (more than one kind) and ``hard_`` for the
        synthetic one-attribute-neighbour subset.
        """
        from common.metrics.retrieval import cosine_similarity, retrieval_metrics

        bs = self.eval_batch_size
        g = np.concatenate([encode_images(self.test_images.batch(range(i, min(i + bs, len(self.test_images)))))
                            for i in range(0, len(self.test_images), bs)])
        q = np.concatenate([encode_texts(self.test_tokens[i:i + bs]) for i in range(0, len(self.test_tokens), bs)])
        sim = cosine_similarity(q, g)
        qp, gp = self.test.caption_pids, self.test.image_pids
        out = retrieval_metrics(sim, qp, gp, msd_order=msd_order)
        kinds = np.asarray(self.test.caption_kind)
        subsets = {k: kinds == k for k in np.unique(kinds)} if np.unique(kinds).size > 1 else {}
        if getattr(self.test, "hard", None) is not None and self.test.hard.any():
            subsets["hard"] = self.test.hard
            for k in np.unique(kinds):
                subsets[f"hard_{k}"] = self.test.hard & (kinds == k)
        for name, rows in subsets.items():
            if rows.any():
                sub = retrieval_metrics(sim[rows], qp[rows], gp, msd_order=msd_order)
                out.update({f"{name}_{k}": v for k, v in sub.items()})
        return out
