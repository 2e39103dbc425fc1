"""Species196 manifests, taxonomy, image store, loading (full / box crop), fixture and FixMatch/MAE
batches: checked against the fixture's JSON read independently and numpy computations."""
import copy
import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from common.config import load_config
from common.data import species196 as s196
from common.data.species196_augment import cutout, mae_masks, randaugment, strong_draws, weak_array
from common.data.species196_fixture import L_DIR, TAXONOMY_CSV, TRAIN_JSON, species196_fixture_root
from common.data.species196_tracks import FixMatchBatches, Species196Data, Subset, labeled_split


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return species196_fixture_root(tmp_path_factory.mktemp("s196"), train_per_class=4, val_per_class=2, unlabeled=12)


def _raw(root, name=TRAIN_JSON):
    return json.loads((root / L_DIR / name).read_text(encoding="utf-8"))


def test_manifest_keys_classes_by_id_and_counts_skips(root):
    raw = _raw(root)
    m = s196.load_manifest(root / L_DIR / TRAIN_JSON, root / L_DIR / TAXONOMY_CSV)
    assert sorted(m.categories) == sorted(c["id"] for c in raw["categories"]) == [3, 7, 11, 12, 25, 31]
    cydia = [c for c in m.categories.values() if c.name == "Cydia"]
    assert len(cydia) == 2 and len({c.id for c in cydia}) == 2           # duplicated name, two classes
    assert {c.scientific_name for c in cydia} == {"Cydia pomonella", "Cydia funebrana"}
    assert m.categories[12].taxonomy == {"class": "Liliopsida", "order": "Poales", "family": "Poaceae", "genus": "Avena"}
    assert m.categories[25].alternates == ("Burgundy snail", "escargot")
    assert m.skipped == Counter({"ambiguous_name": 1, "no_label": 1})
    ann_label = {a["image_id"]: a["category_id"] for a in raw["annotations"]}
    by_name = [im for im in raw["images"] if "category_name" in im and im["category_name"] != "Cydia"]
    assert len(m.images) == len(ann_label) + len(by_name)
    for r in m.images:
        assert r.category_id == ann_label.get(r.id, 12)
    exts = {r.ext for r in m.images}
    assert exts == {".png", ".jpg", ".jpeg"}                             # '.JPG' lower-cased
    assert any(im["origin_url"].endswith(".JPG") for im in raw["images"])


def _write(tmp_path, data, name="m.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


BASE = {"images": [{"id": 1, "file_name": "a", "origin_url": "http://x/a.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 5, "bbox": [0, 0, 4, 4]}],
        "categories": [{"id": 5, "name": "Helix", "supercategory": "Mollusca"}]}


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["images"][0].pop("origin_url"), ["images[0] (id 1)", "'origin_url' is missing"]),
    (lambda d: d["images"][0].update(id="1"), ["images[0]", "'id' must be int"]),
    (lambda d: d["categories"].append({"id": 5, "name": "Cydia", "supercategory": "Insecta"}),
     ["categories[1]", "duplicate category id 5"]),
    (lambda d: d["annotations"][0].update(category_id=9), ["annotations[0]", "category_id 9"]),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, -1, 3]), ["annotations[0]", "'bbox'"]),
    (lambda d: d["images"].append({"id": 2, "file_name": "a", "origin_url": "http://x/b.jpg"}),
     ["images[1] (id 2)", "duplicate file_name"]),
    (lambda d: d["images"][0].update(file_name="../evil"), ["'file_name'", "plain file name"]),
    (lambda d: d.pop("images"), ["'images' must be a list"]),
    (lambda d: d["categories"][0].pop("supercategory"), ["categories[0]", "'supercategory' is missing"]),
])
def test_malformed_records_raise_with_file_record_and_field(tmp_path, mutate, words):
    data = copy.deepcopy(BASE)
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(s196.Species196FormatError) as e:
        s196.load_manifest(p)
    msg = str(e.value)
    assert str(p) in msg and all(w in msg for w in words), msg


def test_not_json_and_taxonomy_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(s196.Species196FormatError, match="not valid JSON"):
        s196.load_manifest(bad)
    data = copy.deepcopy(BASE)
    data["categories"].append({"id": 6, "name": "Helix", "supercategory": "Mollusca"})
    p = _write(tmp_path, data)
    csv = tmp_path / "tax.csv"
    csv.write_text("Scientific name,Common name,Class,Order,Family,Genus\nHelix,snail,Gastropoda,S,Helicidae,Helix\n")
    with pytest.raises(s196.Species196FormatError, match=r"matches categories \[5, 6\]"):
        s196.load_manifest(p, csv)
    csv.write_text("Scientific name,Class\nHelix,Gastropoda\n")
    with pytest.raises(s196.Species196FormatError, match="missing columns"):
        s196.load_manifest(p, csv)


def test_label_map_round_trip_and_errors(tmp_path, root):
    m = s196.load_manifest(root / L_DIR / TRAIN_JSON, root / L_DIR / TAXONOMY_CSV)
    ids = [31, 3, 7]
    s196.write_label_map(tmp_path / "lm.json", m.categories, ids)
    assert s196.read_label_map(tmp_path / "lm.json") == ids
    rows = json.loads((tmp_path / "lm.json").read_text(encoding="utf-8"))["classes"]
    assert [r["scientific_name"] for r in rows] == ["Achatina fulica", "Cydia pomonella", "Cydia funebrana"]
    (tmp_path / "bad.json").write_text(json.dumps({"classes": [{"index": 1, "category_id": 3}]}))
    with pytest.raises(s196.Species196FormatError, match=r"classes\[0\]"):
        s196.read_label_map(tmp_path / "bad.json")


def test_store_checksums_full_and_box_crops_and_unavailable(root):
    m = s196.load_manifest(root / L_DIR / TRAIN_JSON)
    store = s196.ImageStore(root / "images")
    full = s196.Species196Dataset(m.images, store, sorted(m.categories), "full")
    box = s196.Species196Dataset(m.images, store, sorted(m.categories), "bbox")
    assert full.unavailable == 1 and len(full) == len(m.images) - 1     # the dead URL
    assert full.availability == pytest.approx((len(m.images) - 1) / len(m.images))
    for i, r in enumerate(full.records):
        if r.ext == ".png" and r.bbox is not None:
            a = np.asarray(full.image(i))
            x, y, w, h = (int(v) for v in r.bbox)
            np.testing.assert_array_equal(np.asarray(box.image(i)), a[y:y + h, x:x + w])
            assert store.verify(r.file_name)
            break
    else:
        raise AssertionError("no PNG with a box in the fixture")
    no_box = [i for i, r in enumerate(box.records) if r.bbox is None]
    assert box.no_box == len(no_box) == 1 and box.image(no_box[0]).size == full.image(no_box[0]).size


def test_exif_orientation_and_unreadable_files_are_skipped(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                                    # rotate 90 degrees clockwise when displayed
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif.tobytes())
    img = s196.load_rgb_exif(tmp_path / "rot.jpg")
    assert img.size == (10, 20)
    assert np.asarray(img)[:5].mean() > 200 and np.asarray(img)[-5:].mean() < 50
    store = s196.ImageStore(tmp_path / "store")
    good = io.BytesIO()
    Image.fromarray(arr).save(good, format="PNG")
    store.add("good", good.getvalue(), "http://x/good.png", ".png")
    store.add("bad", b"not an image", "http://x/bad.png", ".png")
    recs = [s196.ImageRecord(1, "bad", "u", ".png", 5), s196.ImageRecord(2, "good", "u", ".png", 5)]
    ds = s196.Species196Dataset(recs, store, [5])
    img, t = ds.load(0)
    assert img.size == (20, 10) and t == 0 and ds.num_skipped == 1
    store.index["good"]["sha256"] = "0" * 64
    assert not store.verify("good")


def test_small_classes_reported_and_dropped(root):
    counts = Counter()
    raw = _raw(root)
    ann = {a["image_id"]: a["category_id"] for a in raw["annotations"]}
    stored = json.loads((root / "images" / "index.json").read_text())
    for im in raw["images"]:
        cid = ann.get(im["id"], 12 if im.get("category_name") == "Avena" else None)
        if cid is not None and im["file_name"] in stored:
            counts[cid] += 1
    cfg = load_config("species196", [f"data.root={root}", "data.min_images_per_class=5"])
    data = Species196Data(cfg)
    assert data.small == sorted(counts.items()) and all(n == 4 for n in counts.values())
    assert data.class_ids == [3, 7, 11, 12, 25, 31]
    cfg = load_config("species196", [f"data.root={root}", "data.min_images_per_class=5",
                                     "data.small_class_action=drop"])
    with pytest.raises(ValueError, match="no available images"):
        Species196Data(cfg)


def test_weak_strong_and_mask_draws_match_numpy():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = weak_array(arr, np.array([0.2, 0.0, 0.999]), pad_frac=0.125)       # flip, top 0, left 4
    ref = np.pad(arr[:, ::-1], ((2, 2), (2, 2), (0, 0)), mode="reflect")[0:16, 4:20]
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(weak_array(arr, np.array([0.7, 0.5, 0.5]), 0.125), arr)   # centre, no flip
    cut = cutout(arr, np.array([0.5, 0.25]), 0.5)
    assert (cut[0:8, 4:12] == 127).all() and (cut[8:] == arr[8:]).all()
    u = rng.random(4 * 3)
    np.testing.assert_array_equal(randaugment(arr, u, 3, 10), randaugment(arr, u, 3, 10))
    assert strong_draws(2) == 3 + 8 + 2
    keep, restore, mask = mae_masks(np.random.default_rng(1), 3, 16, 0.75)
    noise = np.random.default_rng(1).random((3, 16))
    np.testing.assert_array_equal(keep, np.argsort(noise, axis=1)[:, :4])
    assert (mask.sum(1) == 12).all() and (np.take_along_axis(mask, keep, 1) == 0).all()
    np.testing.assert_array_equal(np.take_along_axis(np.argsort(noise, axis=1), restore, 1), np.tile(np.arange(16), (3, 1)))


def test_fixmatch_split_and_batches_are_deterministic(root):
    cfg = load_config("species196", [f"data.root={root}", "data.workers=0"])
    data = Species196Data(cfg)
    lab, rest = labeled_split(data.train_ds.targets, 2, seed=1)
    assert np.bincount(data.train_ds.targets[lab]).tolist() == [2] * 6 and len(rest) == len(data.train_ds) - 12
    f = cfg.fixmatch
    make = lambda w: FixMatchBatches(Subset(data.train_ds, lab), data.u_ds, 2, 3, 32, f, list(cfg.aug.mean),  # noqa: E731
                                     list(cfg.aug.std), seed=0, workers=w)
    a, b = make(0), make(2)
    assert len(a) == len(data.u_ds) // 6
    b1, b2 = next(iter(a)), next(iter(b))
    assert [x.shape for x in b1] == [(2, 3, 32, 32), (2,), (6, 3, 32, 32), (6, 3, 32, 32)]
    for x, y in zip(b1, b2):
        np.testing.assert_array_equal(x, y)
    assert np.abs(b1[2] - b1[3]).max() > 0                                  # strong differs from weak
    a.set_epoch(1)
    assert np.abs(next(iter(a))[2] - b1[2]).max() > 0


def test_store_without_index_reads_loose_files(tmp_path):
    (tmp_path / "val").mkdir()
    Image.fromarray(np.full((6, 9, 3), 50, np.uint8)).save(tmp_path / "val" / "x1.JPG", format="JPEG")
    store = s196.ImageStore(tmp_path)
    assert store.index == {} and store.path("x1") == tmp_path / "val" / "x1.JPG" and store.path("x2") is None
    ds = s196.Species196Dataset([s196.ImageRecord(1, "x1", "u", ".jpg", 4), s196.ImageRecord(2, "x2", "u", ".jpg", 4)],
                                store, [4])
    assert len(ds) == 1 and ds.unavailable == 1 and ds.load(0)[0].size == (9, 6)
