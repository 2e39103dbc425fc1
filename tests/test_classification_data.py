"""Classification data: ImageFolder, transforms vs torchvision/independent formulas, mixup, metrics, demo set."""
import logging
import math

import numpy as np
import pytest
from PIL import Image

from common.data import demo_classification as demo
from common.data.classification import ClassificationBatches, ImageFolder
from common.data.cls_transforms import (RRC_ATTEMPTS, TRAIN_DRAWS, eval_transform, random_resized_crop_box,
                                        to_chw_normalized, train_transform)
from common.data.mixup import MixDraw, Mixup, mix_targets, smooth_one_hot
from common.metrics.classification import TopKAccuracy, topk_accuracy


def _photo(h, w, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def folder(tmp_path):
    """root/{b,a,c}/ with 2 good PNGs each, plus a garbage file and a truncated PNG in 'b'."""
    root = tmp_path / "train"
    for ci, cls in enumerate(["b", "a", "c"]):
        (root / cls).mkdir(parents=True)
        for k in range(2):
            _photo(20 + k, 30, 10 * ci + k).save(root / cls / f"img{k}.png")
    (root / "b" / "img2_garbage.png").write_bytes(b"not an image at all" * 10)
    good = (root / "a" / "img0.png").read_bytes()
    (root / "b" / "img3_truncated.png").write_bytes(good[: len(good) // 2])
    (root / "c" / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_image_folder_classes_and_skips_corrupt_files(folder, caplog):
    ds = ImageFolder(folder)
    assert ds.classes == ["a", "b", "c"]
    assert len(ds) == 8
    assert [t for _, t in ds.samples] == [0, 0, 1, 1, 1, 1, 2, 2]
    with caplog.at_level(logging.WARNING):
        images, labels = next(iter(ClassificationBatches(ds, 8, train=False, img_size=16)))
    assert images.shape == (8, 3, 16, 16) and images.dtype == np.float32
    assert ds.num_skipped == 2
    # The two unreadable files of 'b' (indices 4, 5) are replaced by the next readable sample (class c).
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 2, 2]
    msgs = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(msgs) == 2 and "(2 skipped so far" in msgs[-1] and "img3_truncated.png" in msgs[-1]


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "noimg" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match=f"'{tmp_path / 'noimg'}' has 1 class folders but no image files"):
        ImageFolder(tmp_path / "noimg")
    (tmp_path / "val" / "c").mkdir(parents=True)
    _photo(8, 8, 0).save(tmp_path / "val" / "c" / "x.png")
    assert [t for _, t in ImageFolder(tmp_path / "val", classes=["a", "b", "c"]).samples] == [2]  # train indices
    with pytest.raises(ValueError, match=r"class folders \['c'\] .* not among the 2 given classes"):
        ImageFolder(tmp_path / "val", classes=["a", "b"])


def test_random_resized_crop_geometry():
    rng = np.random.default_rng(0)
    width, height = 300, 200
    boxes = np.array([random_resized_crop_box(width, height, rng.random(4 * RRC_ATTEMPTS)) for _ in range(3000)])
    top, left, h, w = boxes.T
    assert (h > 0).all() and (w > 0).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    # Rounding each side by at most 0.5 px bounds the area fraction and the aspect ratio.
    assert ((w + 0.5) * (h + 0.5) >= 0.08 * width * height).all()
    assert ((w + 0.5) / np.maximum(h - 0.5, 1) >= 3 / 4).all() and ((w - 0.5) / (h + 0.5) <= 4 / 3).all()


def test_random_resized_crop_statistics_match_rejection_formula():
    # Square 1000 px image: an attempt (s ~ U(0.08, 1), log r ~ U(-a, a)) is kept iff s*r <= 1 and
    # s/r <= 1, i.e. |log r| <= -log s, so the kept area fraction has density prop. to
    # min(1, -log(s) / a) on [0.08, 1]. (Ten failed attempts in a row have probability < 1e-9.)
    a = math.log(4 / 3)
    s = np.linspace(0.08, 1.0, 200001)
    dens = np.minimum(1.0, -np.log(s) / a)
    expected_mean = np.trapz(s * dens, s) / np.trapz(dens, s)
    rng = np.random.default_rng(1)
    n = 20000
    boxes = np.array([random_resized_crop_box(1000, 1000, rng.random(4 * RRC_ATTEMPTS)) for _ in range(n)])
    top, left, h, w = boxes.T.astype(np.float64)
    frac = w * h / 1e6
    se = frac.std() / math.sqrt(n)
    print(f"RRC mean area fraction {frac.mean():.4f} vs formula {expected_mean:.4f} (se {se:.4f})")
    assert abs(frac.mean() - expected_mean) < 4 * se + 2e-3
    assert abs(np.log(w / h).mean()) < 0.01                       # symmetric aspect ratio
    fh, fw = h < 1000, w < 1000
    assert abs((top[fh] / (1000 - h[fh])).mean() - 0.5) < 0.01     # offsets uniform
    assert abs((left[fw] / (1000 - w[fw])).mean() - 0.5) < 0.01


def test_random_resized_crop_fallbacks():
    never = np.full(4 * RRC_ATTEMPTS, 0.0)       # area 8 %: too tall/wide for a 10 px side
    assert random_resized_crop_box(1000, 10, never) == (0, (1000 - 13) // 2, 10, 13)  # w = round(10 * 4/3)
    assert random_resized_crop_box(10, 1000, never) == ((1000 - 13) // 2, 0, 13, 10)  # h = round(10 / (3/4))
    whole = np.tile([0.999999, 0.999999, 0.5, 0.5], RRC_ATTEMPTS)  # full area at ratio 4/3 never fits
    assert random_resized_crop_box(120, 100, whole) == (0, 0, 100, 120)


def test_transforms_match_torchvision():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    from torchvision import transforms as T

    img = _photo(200, 300, 3)
    u = np.random.default_rng(4).random(TRAIN_DRAWS)
    u[-1] = 0.9                                  # no flip
    top, left, h, w = random_resized_crop_box(300, 200, u)
    ref = np.asarray(TF.resized_crop(img, top, left, h, w, [64, 64], InterpolationMode.BILINEAR))
    np.testing.assert_array_equal(train_transform(img, u, 64), ref)
    u[-1] = 0.1                                  # flip
    np.testing.assert_array_equal(train_transform(img, u, 64), ref[:, ::-1])

    ev = T.Compose([T.Resize(int(64 / 0.875), interpolation=InterpolationMode.BICUBIC), T.CenterCrop(64)])
    np.testing.assert_array_equal(eval_transform(img, 64), np.asarray(ev(img)))
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(TF.to_tensor(ev(img))).numpy()
    np.testing.assert_allclose(to_chw_normalized(eval_transform(img, 64)[None])[0], norm, atol=1e-6)


def test_label_smoothing_values():
    t = smooth_one_hot(np.array([2, 0]), 4, 0.1)
    np.testing.assert_allclose(t, [[0.025, 0.025, 0.925, 0.025], [0.925, 0.025, 0.025, 0.025]], rtol=1e-6)
    np.testing.assert_array_equal(smooth_one_hot(np.array([1]), 3, 0.0), [[0, 1, 0]])


def test_mixup_image_and_targets_follow_formula():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    mix = Mixup(num_classes=5, mixup_alpha=0.8, label_smoothing=0.0)
    lams = []
    for _ in range(200):
        out, t = mix(x, labels, rng)
        lam = float(t[0, 0])                     # label 0 weight of sample 0 (its partner has label 3)
        lams.append(lam)
        np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(out, lam * x + (1 - lam) * x[::-1], atol=1e-6)
        np.testing.assert_allclose(t[0, 3], 1 - lam, atol=1e-6)
    assert abs(np.mean(lams) - 0.5) < 0.06       # Beta(0.8, 0.8) is symmetric about 0.5
    smoothed = mix_targets(labels, 5, 0.7, 0.1)
    np.testing.assert_allclose(smoothed[0], [0.7 * 0.92 + 0.3 * 0.02, 0.02, 0.02, 0.7 * 0.02 + 0.3 * 0.92, 0.02], rtol=1e-6)


def test_cutmix_box_area_equals_corrected_lambda():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 3, 16, 20)).astype(np.float32)
    labels = np.arange(6)
    mix = Mixup(num_classes=6, cutmix_alpha=1.0, label_smoothing=0.1)
    for _ in range(100):
        out, t = mix(x, labels, rng)
        np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
        pasted = (out != x).any(1)               # (B, H, W) pixels taken from the flipped batch
        np.testing.assert_array_equal(out[pasted[:, None].repeat(3, 1)], x[::-1][pasted[:, None].repeat(3, 1)])
        m = pasted[0]
        rows, cols = m.any(1), m.any(0)
        np.testing.assert_array_equal(m, rows[:, None] & cols[None, :])   # one axis-aligned box
        lam = 1 - m.mean()
        np.testing.assert_allclose(t[0, 0], lam * 0.9 + 0.1 / 6, atol=1e-6)
        np.testing.assert_allclose(t[0, 5], (1 - lam) * 0.9 + 0.1 / 6, atol=1e-6)


def test_mixup_switch_and_prob():
    rng = np.random.default_rng(7)
    always_cut = Mixup(4, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=1.0)
    never_cut = Mixup(4, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.0)
    off = Mixup(4, mixup_alpha=1.0, prob=0.0)
    assert all(always_cut.draw(rng, 8, 8).box is not None for _ in range(20))
    assert all(never_cut.draw(rng, 8, 8).box is None for _ in range(20))
    assert all(off.draw(rng, 8, 8) == MixDraw(1.0) for _ in range(20))


def test_batches_deterministic_and_independent_of_workers(folder):
    for p in list(folder.glob("b/img[23]_*")):
        p.unlink()
    ds = ImageFolder(folder)
    aug = {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "label_smoothing": 0.1}
    a = list(ClassificationBatches(ds, 2, True, 12, aug, seed=3, workers=0))
    b = list(ClassificationBatches(ds, 2, True, 12, aug, seed=3, workers=2))
    assert len(a) == 3 and a[0][1].shape == (2, 3) and a[0][1].dtype == np.float32
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    it = ClassificationBatches(ds, 2, True, 12, aug, seed=3)
    it.set_epoch(1)
    assert not np.array_equal(next(iter(it))[0], a[0][0])
    plain = ClassificationBatches(ds, 4, True, 12, seed=3)
    assert len(plain) == 1 and next(iter(plain))[1].dtype == np.int32
    evalb = ClassificationBatches(ds, 4, False, 12)
    assert len(evalb) == 2 and [y.tolist() for _, y in evalb] == [[0, 0, 1, 1], [2, 2]]


def test_topk_hand_worked():
    logits = np.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3],    # label 1: rank 1 -> top1 miss, top5 hit
                       [0.9, 0.1, 0.1, 0.1, 0.1, 0.1],    # label 0: rank 0 -> hit
                       [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],    # label 5: rank 5 -> top5 miss
                       [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]])   # label 3, all tied: rank 3 (index tie-break)
    labels = np.array([1, 0, 5, 3])
    assert topk_accuracy(logits, labels) == {"top1": 25.0, "top5": 75.0}
    acc = TopKAccuracy((1, 2))
    acc.update(logits[:2], labels[:2])
    acc.update(logits[2:], labels[2:])
    assert acc.compute() == {"top1": 25.0, "top2": 50.0}
    assert topk_accuracy(logits[:, :3], np.array([1, 0, 2, 1]), ks=(5,)) == {"top5": 100.0}  # k capped at C
    with pytest.raises(ValueError, match="labels must lie in"):
        topk_accuracy(logits, np.array([0, 0, 0, 6]))


def test_demo_cells_disjoint_and_covering():
    for h, w in [(512, 512), (300, 451)]:
        cover = np.zeros((h, w), int)
        for split in ("train", "val"):
            for y0, y1, x0, x1 in demo.split_cells(h, w, split):
                cover[y0:y1, x0:x1] += 1
        assert (cover == 1).all()
        assert len(demo.split_cells(h, w, "val")) == 3 and len(demo.split_cells(h, w, "train")) == 6


def test_demo_dataset_deterministic_and_atomic(tmp_path, monkeypatch):
    small = {"train_per_class": 2, "val_per_class": 1, "size": 24}
    r1 = demo.demo_classification_root(tmp_path / "a", **small)
    r2 = demo.demo_classification_root(tmp_path / "b", **small)
    files1 = sorted(p.relative_to(r1) for p in r1.rglob("*.png"))
    assert files1 == sorted(p.relative_to(r2) for p in r2.rglob("*.png"))
    assert len(files1) == 8 * 3
    assert all((r1 / f).read_bytes() == (r2 / f).read_bytes() for f in files1)
    ds = ImageFolder(r1 / "train")
    assert ds.classes == sorted(c for c, _, _ in demo.PHOTOS) and len(ds) == 16
    assert np.asarray(Image.open(r1 / files1[0])).shape == (24, 24, 3)
    mtime = (r1 / files1[0]).stat().st_mtime_ns
    assert demo.demo_classification_root(tmp_path / "a", **small) == r1     # cached, not rebuilt
    assert (r1 / files1[0]).stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "a").iterdir()] == [r1.name]      # no temp folder left

    calls = {"n": 0}
    real = demo.random_view

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(demo, "random_view", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        demo.demo_classification_root(tmp_path / "c", **small)
    assert list((tmp_path / "c").iterdir()) == []                         # neither partial nor temp
