"""Species196 benchmark tracks, framework-free part: config handling, data per track, batches and
evaluation. ``ms_models.species196.task`` and ``pt_reference.species196.task`` subclass
:class:`Species196TaskBase` and add the model, the loss and the forward passes.

Tracks (config key ``track``):

| track          | model                                     | batch (numpy)                                |
|----------------|-------------------------------------------|----------------------------------------------|
| supervised     | ``model.name`` (foundation ResNet/ViT/DeiT) | images, labels                              |
| fixmatch       | ``model.name``                            | x_labeled, y_labeled, x_weak, x_strong       |
| mae_pretrain   | ``mae.model`` (MAE ViT encoder + decoder) | images, ids_keep, ids_restore, mask          |
| linear_probe   | ViT encoder from ``probe.pretrained``, frozen; BN + linear head trained | images, labels |
| finetune       | ViT encoder from ``probe.pretrained``, all trained | images, labels                      |
| zero_shot      | stub answer model or CLIP-style scorer    | none (no training step)                      |

``track_settings.<track>`` lists ``key=value`` overrides applied when that track is selected (the
engine's optimizer and schedule differ per track); command-line ``--set`` values still win.
"""
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common.atomic import atomic_path
from common.metrics.species196 import plot_confusion, report_markdown, species196_metrics

from .classification import DEFAULT_AUG, ClassificationBatches
from .cls_transforms import to_chw_normalized
from .species196 import (DATASET_VERSION, ImageStore, Species196Dataset, load_manifest, read_label_map,
                         small_classes, write_label_map)
from .species196_augment import mae_masks, strong_draws, weak_strong_pair, weak_transform, WEAK_DRAWS

TRACKS = ("supervised", "fixmatch", "mae_pretrain", "linear_probe", "finetune", "zero_shot")
CLASSIFIER_TRACKS = ("supervised", "fixmatch", "linear_probe", "finetune")
# MAE variants of the official code (models_mae.py): encoder and decoder shapes.
MAE_VARIANTS = {
    "mae_vit_base_patch16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512,
                                 decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0),
    "mae_vit_large_patch16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, decoder_embed_dim=512,
                                  decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0),
    "mae_vit_huge_patch14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16, decoder_embed_dim=512,
                                 decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0),
}
ENCODER_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")


def apply_track_settings(cfg):
    """Re-load the config with ``track_settings[cfg.track]`` before the command-line overrides and
    update ``cfg`` in place (so the engine reads the track's optimizer and schedule)."""
    from common.config import load_config
    track = cfg.track
    if track not in TRACKS:
        raise ValueError(f"config key 'track' = {track!r}; choices: {TRACKS}")
    settings = list((cfg.get("track_settings") or {}).get(track) or [])
    meta = cfg.get("_meta_") or {}
    if not settings or not meta.get("config_path"):
        return cfg
    bad = [s for s in settings if not isinstance(s, str) or "=" not in s or s.split("=", 1)[0].strip() == "track"]
    if bad:
        raise ValueError(f"track_settings.{track} must list 'key=value' strings (not 'track'), got {bad}")
    new = load_config(meta["config_path"], settings + list(meta.get("overrides") or []))
    new["_meta_"]["track_settings_applied"] = settings
    cfg.clear()
    cfg.update(new)
    return cfg


def mae_model_kwargs(cfg):
    """Keyword arguments of the MAE builder: the variant's shape, ``data.img_size``, ``mae.kwargs``."""
    name = cfg.mae.model
    if name not in MAE_VARIANTS:
        raise ValueError(f"mae.model = {name!r}; choices: {sorted(MAE_VARIANTS)}")
    kw = dict(MAE_VARIANTS[name], img_size=int(cfg.data.img_size), norm_pix_loss=bool(cfg.mae.norm_pix_loss))
    kw.update(cfg.mae.kwargs or {})
    return kw


def encoder_kwargs(cfg):
    """ViT classifier shape matching the MAE encoder of ``mae.*`` (for linear_probe / finetune)."""
    kw = mae_model_kwargs(cfg)
    return {k: kw[k] for k in ENCODER_KEYS}


def resolve_pretrained(cfg, suffix):
    """Path of the MAE checkpoint for linear_probe / finetune: ``probe.pretrained`` or, for 'auto',
    the newest ``last<suffix>`` of a run under the family's run folder whose config has
    ``track: mae_pretrain``; None for ``null`` (random initialisation)."""
    from common.runlog import run_parent
    spec = cfg.probe.pretrained
    if spec is None:
        return None
    if spec != "auto":
        p = Path(str(spec)).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"probe.pretrained: checkpoint not found: {p}")
        return p
    import yaml
    parent = run_parent(cfg, cfg.get("family") or "species196")
    found = []
    for ck in Path(parent).glob(f"*/last{suffix}") if Path(parent).is_dir() else []:
        conf = ck.parent / "config.yaml"
        try:
            track = (yaml.safe_load(conf.read_text()) or {}).get("track") if conf.is_file() else None
        except yaml.YAMLError:
            track = None
        if track == "mae_pretrain":
            found.append(ck)
    if not found:
        raise FileNotFoundError(f"probe.pretrained: auto found no MAE pre-training run (last{suffix} of a run with "
                                f"track: mae_pretrain) under {parent}; run the track mae_pretrain first, or set "
                                f"probe.pretrained to a checkpoint path or null (random initialisation)")
    return max(found, key=lambda p: p.stat().st_mtime)


class Subset:
    """A view of some samples of a dataset (``load``, ``targets``, ``classes``, ``root``)."""

    def __init__(self, dataset, indices, hide_labels=False):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.classes = dataset.classes
        self.root = dataset.root
        self.hide_labels = hide_labels
        self.targets = np.full(len(self.indices), -1, np.int32) if hide_labels else dataset.targets[self.indices]

    def __len__(self):
        return len(self.indices)

    def load(self, i):
        img, t = self.dataset.load(int(self.indices[i]))
        return img, (-1 if self.hide_labels else t)


class Concat:
    """Datasets one after the other (labels as given by each part)."""

    def __init__(self, parts, name):
        self.parts = [p for p in parts if p is not None and len(p)]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.classes = ["unlabeled"]
        self.root = name
        self.targets = np.concatenate([p.targets for p in self.parts]).astype(np.int32)

    def __len__(self):
        return int(self.offsets[-1])

    def load(self, i):
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[k].load(int(i - self.offsets[k]))


class Species196Data:
    """Manifests, label map, image store and datasets of a config (``data.*``)."""

    def __init__(self, cfg):
        d = cfg.data
        if d.root is None:
            from .species196_fixture import species196_fixture_root
            self.root = species196_fixture_root()
            print(f"[data] data.root is null: using the built-in Species196 fixture at {self.root}")
        else:
            self.root = Path(str(d.root)).expanduser()
        rel = lambda v: None if not v else (self.root / str(v))  # noqa: E731
        tax = rel(d.taxonomy_csv)
        self.train_manifest = load_manifest(rel(d.train_json), tax)
        self.val_manifest = load_manifest(rel(d.val_json), tax)
        self.categories = self.train_manifest.categories
        val_only = sorted(set(self.val_manifest.categories) - set(self.categories))
        if val_only:
            raise ValueError(f"{self.val_manifest.path}: categories {val_only} are not in {self.train_manifest.path}")
        self.store = ImageStore(rel(d.image_dir))
        self.crop_mode = d.crop_mode
        probe = Species196Dataset(self.train_manifest.images, self.store, sorted(self.categories), "full",
                                  name=str(self.train_manifest.path))
        self.small = small_classes(probe.records, self.categories, int(d.min_images_per_class))
        if self.small:
            txt = ", ".join(f"{cid} {self.categories[cid].display_name} ({n})" for cid, n in self.small)
            print(f"[data] {len(self.small)} classes have fewer than {d.min_images_per_class} available training "
                  f"images ({'dropped' if d.small_class_action == 'drop' else 'kept'}): {txt}")
        if d.label_map:
            self.class_ids = read_label_map(rel(d.label_map) if not Path(str(d.label_map)).is_absolute()
                                            else Path(str(d.label_map)))
            unknown = [c for c in self.class_ids if c not in self.categories]
            if unknown:
                raise ValueError(f"data.label_map {d.label_map}: category ids {unknown} are not in the manifest")
        else:
            drop = {cid for cid, _ in self.small} if d.small_class_action == "drop" else set()
            self.class_ids = sorted(c for c in self.categories if c not in drop)
        self.num_classes = len(self.class_ids)
        kw = dict(crop_mode=d.crop_mode, bbox_margin=d.bbox_margin)
        self.train_ds = Species196Dataset(self.train_manifest.images, self.store, self.class_ids,
                                          name=str(self.train_manifest.path), **kw)
        self.val_ds = Species196Dataset(self.val_manifest.images, self.store, self.class_ids,
                                        name=str(self.val_manifest.path), **kw)
        self.u_ds = None
        if d.unlabeled_json:
            u_path = rel(d.unlabeled_json)
            if u_path.is_file():
                u = load_manifest(u_path, require_categories=False)
                self.u_ds = Species196Dataset(u.unlabeled + u.images, self.store, None, "full", name=str(u_path))
            else:
                print(f"[data] data.unlabeled_json {u_path} not found: no Species196-U images")
        self.summary = {
            "dataset_version": d.version, "num_classes": self.num_classes, "crop_mode": d.crop_mode,
            "train_images": len(self.train_ds), "val_images": len(self.val_ds),
            "unlabeled_images": len(self.u_ds) if self.u_ds is not None else 0,
            "url_availability_train": round(self.train_ds.availability, 4),
            "url_availability_val": round(self.val_ds.availability, 4),
            "skipped_train": dict(self.train_manifest.skipped), "skipped_val": dict(self.val_manifest.skipped),
            "small_classes": [[cid, n] for cid, n in self.small],
        }

    def write_label_map(self, path):
        write_label_map(path, self.categories, self.class_ids, self.summary["dataset_version"] or DATASET_VERSION)


def _aug_cfg(cfg, **override):
    a = {k: cfg.aug[k] for k in DEFAULT_AUG}
    a.update(override)
    return a


class FixMatchBatches:
    """FixMatch batches: ``(x_labeled (B,3,S,S), y_labeled int32 (B,), x_weak (muB,3,S,S),
    x_strong (muB,3,S,S))``. Labeled samples get the weak view; unlabeled ones a weak and a strong
    view of the same image. Epoch ``e`` draws from ``np.random.default_rng([seed, e, 11])``: the
    unlabeled order, the labeled stream (consecutive permutations) and every augmentation uniform.
    """

    def __init__(self, labeled, unlabeled, batch_size, mu, img_size, f, mean, std, seed, workers=0, steps=0):
        self.labeled, self.unlabeled = labeled, unlabeled
        self.b, self.mu, self.size = int(batch_size), int(mu), int(img_size)
        self.f, self.mean, self.std = f, mean, std
        self.seed, self.workers = int(seed), int(workers)
        self.epoch = 0
        if len(unlabeled) < self.mu * self.b:
            raise ValueError(f"FixMatch: {len(unlabeled)} unlabeled images, fewer than one batch of mu * batch_size = "
                             f"{self.mu * self.b} (lower fixmatch.mu or data.batch_size)")
        self.steps = int(steps) or max(1, len(unlabeled) // (self.mu * self.b))

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.steps

    def _labeled_stream(self, rng, n):
        out = []
        while len(out) < n:
            out.extend(rng.permutation(len(self.labeled)).tolist())
        return out[:n]

    def _lab(self, args):
        i, u = args
        img, t = self.labeled.load(int(i))
        return weak_transform(img, u, self.size, self.f.pad_frac), t

    def _unl(self, args):
        i, u = args
        img, _ = self.unlabeled.load(int(i))
        return weak_strong_pair(img, u, self.size, int(self.f.randaugment_ops), int(self.f.randaugment_magnitude),
                                float(self.f.cutout), float(self.f.pad_frac))

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 11])
        mb = self.mu * self.b
        u_order = rng.permutation(len(self.unlabeled))
        lab = self._labeled_stream(rng, self.steps * self.b)
        n_strong = strong_draws(int(self.f.randaugment_ops))
        pool = ThreadPoolExecutor(self.workers) if self.workers > 0 else None
        mapper = pool.map if pool is not None else map
        try:
            for s in range(self.steps):
                li = lab[s * self.b:(s + 1) * self.b]
                ui = u_order[(s * mb) % len(u_order):][:mb]
                if len(ui) < mb:
                    ui = np.concatenate([ui, u_order[:mb - len(ui)]])
                lu = rng.random((self.b, WEAK_DRAWS))
                uu = rng.random((mb, n_strong))
                labs = list(mapper(self._lab, zip(li, lu)))
                unls = list(mapper(self._unl, zip(ui, uu)))
                norm = lambda arrs: to_chw_normalized(np.stack(arrs), self.mean, self.std)  # noqa: E731
                yield (norm([a for a, _ in labs]), np.array([t for _, t in labs], np.int32),
                       norm([w for w, _ in unls]), norm([st for _, st in unls]))
        finally:
            if pool is not None:
                pool.shutdown()


class MAEBatches:
    """MAE pre-training batches ``(images, ids_keep int32 (B,K), ids_restore int32 (B,L), mask (B,L))``:
    the foundation's RandomResizedCrop + flip batches of an unlabeled set plus masks drawn from
    ``np.random.default_rng([seed, epoch, 13])``."""

    def __init__(self, batches, num_patches, mask_ratio, seed):
        self.batches = batches
        self.num_patches, self.mask_ratio, self.seed = int(num_patches), float(mask_ratio), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        self.batches.set_epoch(epoch)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 13])
        for images, _ in self.batches:
            ids_keep, ids_restore, mask = mae_masks(rng, images.shape[0], self.num_patches, self.mask_ratio)
            yield images, ids_keep, ids_restore, mask


def labeled_split(targets, per_class, seed):
    """Indices of ``per_class`` samples of each class (all when a class has fewer), drawn with
    ``np.random.default_rng(seed)``; sorted. The rest is returned second."""
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(targets):
        idx = np.flatnonzero(targets == k)
        chosen.extend(rng.permutation(idx)[:per_class].tolist())
    chosen = np.array(sorted(chosen), dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(targets)), chosen)
    return chosen, rest


def knn_scores(train_feats, train_labels, query_feats, num_classes, k=20, temperature=0.07):
    """Weighted k-NN class scores (N, K) with cosine similarity and weights exp(sim / T) (DINO)."""
    def norm(x):
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = norm(query_feats) @ norm(train_feats).T
    k = min(int(k), sim.shape[1])
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    w = np.exp(np.take_along_axis(sim, idx, axis=1) / temperature)
    scores = np.zeros((sim.shape[0], num_classes))
    np.add.at(scores, (np.repeat(np.arange(sim.shape[0]), k), np.asarray(train_labels)[idx].reshape(-1)), w.reshape(-1))
    return scores


class Species196TaskBase:
    """The framework-free half of a Species196 task (see the module docstring and
    docs/dev/CONTRACTS.md). Subclasses provide ``build_model``, ``forward_loss``, ``param_groups``
    and the numpy forward passes ``logits_np``, ``features_np``, ``mae_loss_np``, ``image_text_model``.
    """

    framework = None
    ckpt_suffix = None

    def __init__(self, cfg):
        apply_track_settings(cfg)
        self.cfg = cfg
        self.track = cfg.track
        self.rng = None  # batches depend only on (seed, epoch)
        self.data = Species196Data(cfg)
        self.num_classes = int(cfg.model.num_classes or self.data.num_classes)
        if self.num_classes != self.data.num_classes:
            raise ValueError(f"model.num_classes={self.num_classes} but the label map has {self.data.num_classes} "
                             f"classes (set model.num_classes: null)")
        d, seed = cfg.data, int(cfg.train.seed)
        self.eval_bs = int(d.eval_batch_size or d.batch_size)
        self.val_batches = ClassificationBatches(self.data.val_ds, self.eval_bs, False, d.img_size, _aug_cfg(cfg), seed,
                                                 workers=d.workers, num_classes=self.num_classes)
        self.train = None
        self.loss_names = ("ce",)
        if self.track in ("supervised", "linear_probe", "finetune"):
            self.train = ClassificationBatches(self.data.train_ds, d.batch_size, True, d.img_size, _aug_cfg(cfg), seed,
                                               workers=d.workers, num_classes=self.num_classes)
        elif self.track == "fixmatch":
            self._build_fixmatch(cfg, seed)
            self.loss_names = ("sup", "unsup", "mask_rate")
        elif self.track == "mae_pretrain":
            self._build_mae(cfg, seed)
            self.loss_names = ("mae",)
        elif self.track == "zero_shot":
            self.loss_names = ("none",)
        self.model = self.build_model()

    # ---- data ------------------------------------------------------------------------------
    def _build_fixmatch(self, cfg, seed):
        f, d = cfg.fixmatch, cfg.data
        train = self.data.train_ds
        if f.labeled_per_class:
            lab_idx, rest = labeled_split(train.targets, int(f.labeled_per_class), int(f.split_seed))
        else:
            lab_idx, rest = np.arange(len(train)), np.array([], np.int64)
        self.labeled = Subset(train, lab_idx)
        parts = []
        if f.unlabeled_source in ("u", "both"):
            if self.data.u_ds is None:
                raise ValueError("fixmatch.unlabeled_source includes 'u' but data.unlabeled_json gives no images")
            parts.append(self.data.u_ds)
        if f.unlabeled_source in ("train_rest", "both") and len(rest):
            parts.append(Subset(train, rest, hide_labels=True))
        unl = Concat(parts, "fixmatch unlabeled")
        self.split_info = {"labeled": int(len(self.labeled)), "unlabeled": int(len(unl))}
        print(f"[data] FixMatch: {len(self.labeled)} labeled images ({f.labeled_per_class or 'all'} per class), "
              f"{len(unl)} unlabeled ({f.unlabeled_source})")
        self.train = FixMatchBatches(self.labeled, unl, d.batch_size, f.mu, d.img_size, f, list(cfg.aug.mean),
                                     list(cfg.aug.std), seed, d.workers, f.steps_per_epoch)

    def _build_mae(self, cfg, seed):
        m, d = cfg.mae, cfg.data
        parts = []
        if m.data in ("u", "both") and self.data.u_ds is not None:
            parts.append(self.data.u_ds)
        if m.data in ("train", "both"):
            parts.append(Subset(self.data.train_ds, np.arange(len(self.data.train_ds)), hide_labels=True))
        ds = Concat(parts, "MAE pre-training images")
        kw = mae_model_kwargs(cfg)
        num_patches = (int(kw["img_size"]) // int(kw["patch_size"])) ** 2
        aug = _aug_cfg(cfg, scale=list(m.scale), mixup_alpha=0.0, cutmix_alpha=0.0, cutmix_minmax=None,
                       label_smoothing=0.0)
        base = ClassificationBatches(ds, d.batch_size, True, d.img_size, aug, seed, workers=d.workers, num_classes=1)
        self.train = MAEBatches(base, num_patches, m.mask_ratio, seed)
        self.num_patches = num_patches
        print(f"[data] MAE pre-training on {len(ds)} images ({m.data}), {num_patches} patches, mask ratio {m.mask_ratio}")

    def steps_per_epoch(self):
        return 1 if self.track == "zero_shot" else len(self.train)

    def set_epoch(self, epoch):
        if self.train is not None:
            self.train.set_epoch(epoch)

    def train_batches(self, epoch):
        self.set_epoch(epoch)
        if self.track == "zero_shot":
            return iter([(np.zeros((1,), np.float32),)])
        return iter(self.train)

    # ---- framework hooks -------------------------------------------------------------------
    def build_model(self):
        raise NotImplementedError

    def logits_np(self, model, images):
        raise NotImplementedError

    def features_np(self, model, images):
        raise NotImplementedError

    def mae_loss_np(self, model, images, ids_keep, ids_restore, mask):
        raise NotImplementedError

    def image_text_model(self):
        raise NotImplementedError

    # ---- evaluation ------------------------------------------------------------------------
    def _scores_and_labels(self, model):
        scores, labels = [], []
        for images, y in self.val_batches:
            scores.append(self.logits_np(model, images))
            labels.append(y)
        return np.concatenate(scores), np.concatenate(labels)

    def _features(self, model, dataset):
        d = self.cfg.data
        batches = ClassificationBatches(dataset, self.eval_bs, False, d.img_size, _aug_cfg(self.cfg), 0,
                                        workers=d.workers, num_classes=1)
        feats, labels = [], []
        for images, y in batches:
            feats.append(self.features_np(model, images))
            labels.append(y)
        return np.concatenate(feats), np.concatenate(labels)

    def _mae_val_loss(self, model):
        rng = np.random.default_rng([int(self.cfg.train.seed), 17])
        total, n = 0.0, 0
        for images, _ in self.val_batches:
            keep, restore, mask = mae_masks(rng, images.shape[0], self.num_patches, self.cfg.mae.mask_ratio)
            total += self.mae_loss_np(model, images, keep, restore, mask) * images.shape[0]
            n += images.shape[0]
        return total / n

    def evaluate(self, model, run_dir=None):
        """Species196 metrics of the track on the val split; writes the label map, a Markdown report,
        the metrics JSON and the confusion PNG into ``run_dir`` (when given)."""
        extra = {}
        if self.track == "zero_shot":
            from common.zero_shot import evaluate_zero_shot
            res = evaluate_zero_shot(self, run_dir)
            m, extra = res["metrics"], res["extra"]
        elif self.track == "mae_pretrain":
            extra["val_mae_loss"] = float(self._mae_val_loss(model))
            tf, tl = self._features(model, self.data.train_ds)
            vf, vl = self._features(model, self.data.val_ds)
            scores = knn_scores(tf, tl, vf, self.num_classes, self.cfg.mae.knn_k)
            m = species196_metrics(scores, vl, self.data.categories, self.data.class_ids)
            extra["eval"] = f"k-NN (k={min(int(self.cfg.mae.knn_k), len(tl))}) on encoder class-token features"
        else:
            scores, labels = self._scores_and_labels(model)
            m = species196_metrics(scores, labels, self.data.categories, self.data.class_ids)
        out = {"top1": m["top1"], "top5": m["top5"], "macro_acc": m["macro_acc"]}
        out.update({f"level_{k}": v for k, v in m["per_level"].items()})
        out.update({f"super_{k}": v for k, v in m["per_supercategory"].items()})
        out.update({k: v for k, v in extra.items() if isinstance(v, (int, float))})
        out["primary"] = "top1"
        if run_dir is not None:
            self.write_report(Path(run_dir), m, extra)
        return out

    def write_report(self, run_dir, m, extra):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.data.write_label_map(run_dir / "label_map.json")
        info = {"track": self.track, "framework": self.framework, "seed": int(self.cfg.train.seed),
                **self.data.summary, **{k: v for k, v in extra.items()}}
        if hasattr(self, "split_info"):
            info["fixmatch_split"] = self.split_info
        with atomic_path(run_dir / "species196_metrics.json") as tmp:
            tmp.write_text(json.dumps({"info": info, "metrics": m}, indent=1, ensure_ascii=False), encoding="utf-8")
        head = {"track": self.track, "crop": self.data.crop_mode,
                "URL availability (train/val)": f"{self.data.summary['url_availability_train']:.3f} / "
                                                f"{self.data.summary['url_availability_val']:.3f}"}
        head.update({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in extra.items()})
        text = report_markdown(m, self.data.categories, self.data.class_ids,
                               f"Species196 {self.track} ({self.framework}, dataset {self.data.summary['dataset_version']})",
                               head)
        with atomic_path(run_dir / "species196_report.md") as tmp:
            tmp.write_text(text, encoding="utf-8")
        labels = [f"{cid} {self.data.categories[cid].display_name}" for cid in self.data.class_ids]
        if self.cfg.report.confusion_png:
            plot_confusion(m["confusion"], labels, run_dir / "confusion.png",
                           f"Species196 {self.track}: confusion (rows true, columns predicted)")

