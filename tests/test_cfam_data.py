"""Person-retrieval data (common/data/person_retrieval.py): the five annotation formats with their
field differences and errors, the synthetic persons, image fallback and the numpy batches; and the
CLIP checkpoint helpers (common/weights/openai_clip.py) against torch's interpolation."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from common.config import load_config
from common.data.person_retrieval import (ImageStore, RetrievalData, find_annotation, load_person_retrieval,
                                          one_attribute_neighbours, synthetic_identities, synthetic_person_retrieval)
from common.weights.openai_clip import (prepare_clip_state, resize_text_positional_embedding,
                                        resize_visual_positional_embedding)


def _write(root, folder, name, records):
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps(records))
    return d


def test_cuhk_pedes_ids_are_one_based_and_splits_map_to_val(tmp_path):
    recs = [{"split": "train", "id": 1, "file_path": "cam_a/1.jpg", "captions": ["a", "b"], "processed_tokens": []},
            {"split": "train", "id": 3, "file_path": "cam_b/2.jpg", "captions": ["c"]},
            {"split": "val", "id": 7, "file_path": "cam_a/3.jpg", "captions": ["d", "e"]},
            {"split": "test", "id": 9, "file_path": "cam_a/4.jpg", "captions": ["f"]},
            {"split": "dev", "id": 8, "file_path": "cam_a/5.jpg", "captions": ["g"]}]
    _write(tmp_path, "CUHK-PEDES", "reid_raw.json", recs)
    s = load_person_retrieval("cuhk_pedes", str(tmp_path))
    assert sorted(s) == ["test", "train", "val"]
    assert s["train"].image_pids.tolist() == [0, 1] and s["train"].caption_pids.tolist() == [0, 0, 1]
    assert s["train"].caption_image.tolist() == [0, 0, 1]
    assert s["train"].images[0] == str(tmp_path / "CUHK-PEDES" / "imgs" / "cam_a/1.jpg")
    assert s["val"].image_pids.tolist() == [6, 7]                       # id - 1; 'dev' goes to val
    assert s["test"].image_pids.tolist() == [8] and s["test"].captions == ["f"]


def test_icfg_alternative_file_name_and_rstpreid_img_path(tmp_path):
    _write(tmp_path, "ICFG-PEDES", "ICFG_PEDES.json",
           [{"split": "train", "id": 0, "file_path": "train/0.jpg", "captions": ["x"]},
            {"split": "test", "id": 5, "file_path": "test/5.jpg", "captions": ["y"]}])
    s = load_person_retrieval("icfg_pedes", str(tmp_path))
    assert s["test"].image_pids.tolist() == [5]                         # 0-based, kept
    _write(tmp_path, "RSTPReid", "data_captions.json",
           [{"split": "train", "id": 4, "img_path": "4_1.jpg", "captions": ["p", "q"]},
            {"split": "test", "id": 2, "img_path": "2_1.jpg", "captions": ["r"]}])
    s = load_person_retrieval("rstpreid", str(tmp_path))
    assert s["train"].images == [str(tmp_path / "RSTPReid" / "imgs" / "4_1.jpg")]
    assert s["train"].image_pids.tolist() == [0]                        # relabelled contiguous


def test_ufine_formats(tmp_path):
    _write(tmp_path, "UFine6926", "ufine6926.json",
           [{"split": "train", "id": 1, "file_path": "images/1.jpg", "captions": ["long one", "long two"]},
            {"split": "test", "id": 2, "file_path": "images/2.jpg", "captions": ["t1", "t2"]}])
    s = load_person_retrieval("ufine6926", str(tmp_path))
    assert s["train"].images == [str(tmp_path / "UFine6926" / "images/1.jpg")]
    assert len(s["test"].captions) == 2
    _write(tmp_path, "UFine3C", "ufine3c.json",
           [{"id": 11, "source": "UFine6926", "split": "test", "file_path": "a.jpg", "captions": ["1", "2", "3"]},
            {"id": 12, "source": "CUHK-PEDES", "split": "test", "file_path": "b.jpg", "captions": ["4"]}])
    s = load_person_retrieval("ufine3c", str(tmp_path))
    assert list(s) == ["test"]
    assert s["test"].caption_kind == ["UFine6926"] * 3 + ["CUHK-PEDES"]
    assert s["test"].caption_pids.tolist() == [11, 11, 11, 12]


def test_errors_name_file_record_and_field(tmp_path):
    d = _write(tmp_path, "RSTPReid", "data_captions.json",
               [{"split": "train", "id": 0, "file_path": "x.jpg", "captions": ["a"]}])
    with pytest.raises(ValueError, match=r"data_captions.json: record 0 lacks field\(s\) \['img_path'\]"):
        load_person_retrieval("rstpreid", str(tmp_path))
    _write(tmp_path, "CUHK-PEDES", "reid_raw.json",
           [{"split": "train", "id": 1, "img_path": "x.jpg", "captions": ["a"]}])
    with pytest.raises(ValueError, match="RSTPReid names it 'img_path'"):
        load_person_retrieval("cuhk_pedes", str(tmp_path))
    _write(tmp_path, "ICFG-PEDES", "ICFG-PEDES.json", [{"split": "train", "id": 0, "file_path": "a", "captions": "x"}])
    with pytest.raises(ValueError, match="'captions' must be a list of strings"):
        load_person_retrieval("icfg_pedes", str(tmp_path))
    (d / "data_captions.json").write_text("{\"not\": \"a list\"}")
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_person_retrieval("rstpreid", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ufine6926.json.*data.annotation_file"):
        find_annotation("ufine6926", str(tmp_path))
    with pytest.raises(ValueError, match="unknown person-retrieval dataset 'market'"):
        find_annotation("market", str(tmp_path))


def test_synthetic_persons_are_deterministic_disjoint_and_described():
    a = synthetic_person_retrieval(num_ids=20, images_per_id=2, seed=3)
    b = synthetic_person_retrieval(num_ids=20, images_per_id=2, seed=3)
    for split in ("train", "test"):
        assert all(np.array_equal(x, y) for x, y in zip(a[split].images, b[split].images))
        assert a[split].captions == b[split].captions
    assert len(set(a["train"].identities) & set(a["test"].identities)) == 0
    assert a["test"].images[0].shape == (64, 32, 3) and a["test"].images[0].dtype == np.uint8
    tr = a["train"]
    assert tr.caption_kind[:2] == ["fine", "coarse"] and len(tr.captions) == 2 * len(tr.images)
    upper, lower, shoes, bag, hat, hair, stripes = tr.identities[tr.caption_pids[0]]
    fine = tr.captions[0]
    for word in (upper, lower, shoes, hair, "striped" if stripes else "plain", "a hat" if hat else "no hat",
                 "a brown bag" if bag else "no bag"):
        assert word in fine
    assert fine.count(",") >= 3 and len(tr.captions[1]) < len(fine)
    ids = synthetic_identities(30, seed=1)
    brute = [any(sum(x != y for x, y in zip(p, q)) == 1 for q in ids) for p in ids]
    assert one_attribute_neighbours(ids).tolist() == brute


def test_image_store_replaces_unreadable_files_with_a_warning(tmp_path):
    ok = tmp_path / "ok.png"
    Image.fromarray(np.full((20, 10, 3), 128, np.uint8)).save(ok)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    store = ImageStore([str(ok), str(bad)], (16, 8))
    with pytest.warns(UserWarning, match="unreadable image .*bad.jpg"):
        x = store.batch([0, 1])
    assert x.shape == (2, 3, 16, 8) and np.array_equal(x[0], x[1]) and store.skipped == [str(bad)]
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    np.testing.assert_allclose(x[0, :, 0, 0], (128 / 255 - mean) / std, rtol=1e-6)


def test_batches_depend_only_on_seed_and_epoch():
    cfg = load_config("cfam", ["data.synthetic_ids=12", "data.synthetic_images_per_id=2", "data.batch_size=6",
                               "data.img_aug=true", "model.text_length=40"])
    d1, d2 = RetrievalData(cfg), RetrievalData(cfg)
    b1, b2 = list(d1.train_batches(1)), list(d2.train_batches(1))
    assert len(b1) == d1.steps_per_epoch() == len(d1.train.captions) // 6
    for x, y in zip(b1, b2):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    images, ids, pids, mlm_ids, mlm_labels = b1[0]
    assert images.shape == (6, 3, 64, 32) and images.dtype == np.float32
    assert ids.shape == mlm_ids.shape == mlm_labels.shape == (6, 40) and ids.dtype == np.int32
    assert (ids.argmax(1) == (ids > 0).sum(1) - 1).all()                # EOT is the last real token
    assert pids.dtype == np.int32 and pids.max() < d1.num_classes
    assert not np.array_equal(b1[0][0], next(d1.train_batches(2))[0])


def test_position_table_resizing_matches_torch_interpolate():
    rng = np.random.default_rng(0)
    pos = rng.standard_normal((1 + 14 * 14, 12)).astype(np.float32)
    got = resize_visual_positional_embedding(pos, (24, 8))
    grid = torch.from_numpy(pos[1:].astype(np.float64)).reshape(1, 14, 14, 12).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(24, 8), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).reshape(-1, 12)
    assert got.shape == (193, 12) and np.array_equal(got[0], pos[0])
    np.testing.assert_allclose(got[1:], ref.numpy(), atol=1e-6, rtol=0)   # torch in float64
    text = rng.standard_normal((77, 8)).astype(np.float32)
    longer = resize_text_positional_embedding(text, 168)
    ref1 = F.interpolate(torch.from_numpy(text.astype(np.float64)).T[None], size=168, mode="linear", align_corners=False)[0].T
    np.testing.assert_allclose(longer, ref1.numpy(), atol=1e-6, rtol=0)
    assert np.array_equal(resize_text_positional_embedding(text, 40), text[:40])
    state = prepare_clip_state({"positional_embedding": text, "visual.positional_embedding": pos,
                                "input_resolution": np.array(224), "logit_scale": np.array(4.6, np.float32)},
                               prefix="base_model.", grid_hw=(24, 8), context_length=168)
    assert sorted(state) == ["base_model.logit_scale", "base_model.positional_embedding",
                             "base_model.visual.positional_embedding"]
    assert state["base_model.logit_scale"].shape == ()
