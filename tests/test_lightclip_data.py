"""LightCLIP demo data and metrics: held-out pairs never reach training, captions describe the
painted objects, the compact vocabulary keeps EOT as the largest id, batches are deterministic,
alpha follows the schedule, and the metrics equal hand-computed values."""
import numpy as np
import pytest

from common.config import load_config
from common.data.lightclip_shapes import (COLOURS, MEAN, STD, CompactVocab, LightCLIPData, ShapesCaptions,
                                          held_out_pairs, retrieval_recalls, zero_shot_accuracy)
from common.text.clip_tokenizer import CLIPTokenizer

SMALL = ["data.num_train=64", "data.num_test=16", "data.batch_size=16", "data.zs_per_pair=1", "train.epochs=2"]


def test_held_out_pairs_never_in_training_and_captions_match_pixels():
    held = held_out_pairs(0.2, 0)
    assert len(held) == 5
    d = ShapesCaptions(num_train=200, num_test=20, size=(32, 32), zs_per_pair=1, seed=0)
    for c, s in held:
        assert not any(f"{c} {s}" in cap for cap in d.train_captions + d.test_captions)
    assert {d.classes[i] for i in d.zs_labels[d.zs_held]} == set(held)
    assert d.zs_held.sum() == 5 and len(d.zs_labels) == 24
    for img, cap in zip(d.train_images[:20], d.train_captions[:20]):
        rgb = np.rint((img.transpose(1, 2, 0) * STD + MEAN) * 255)
        for colour, value in COLOURS.items():
            near = (np.abs(rgb - np.array(value)) <= 16).all(-1).sum()
            assert (near > 3) == (f" {colour} " in cap), (cap, colour, near)


def test_compact_vocab_and_batches_are_deterministic():
    cfg = load_config("lightclip", SMALL)
    a, b = LightCLIPData(cfg), LightCLIPData(cfg)
    assert a.eot_id == a.vocab_size - 1 and a.mask_id < a.sot_id < a.eot_id
    assert (a.train_ids.argmax(1) == (a.train_ids > 0).sum(1) - 1).all()  # EOT is the last real token
    tok = CLIPTokenizer(mask_token=True)
    enc = tok.encode("a red circle")
    v = CompactVocab(tok, ["a red circle"])
    rank = {bpe: i + 1 for i, bpe in enumerate(sorted(set(enc)))}  # sorted BPE ids -> 1..n
    assert v.tokenize(["a red circle"], 6).tolist() == [[v.sot_id] + [rank[i] for i in enc] + [v.eot_id, 0]]
    assert v.size == len(set(enc)) + 4
    with pytest.raises(ValueError, match="text_length"):
        v.tokenize(["a red circle"], 4)
    ba, bb = list(a.train_batches(1)), list(b.train_batches(1))
    assert len(ba) == a.steps_per_epoch() == 4
    for x, y in zip(ba, bb):
        for u, w in zip(x, y):
            np.testing.assert_array_equal(u, w)
    images, ids, alpha, mlm_ids, mlm_labels, match = ba[2]
    assert images.shape == (16, 3, 32, 32) and match.shape == (16, 24, 16) and not match.any()
    total = 2 * 4
    np.testing.assert_allclose(alpha, 0.1 * (4 + 2) / total)
    sel = mlm_labels > 0
    assert sel.any() and (mlm_labels[sel] == ids[sel]).all() and (mlm_ids[~sel] == ids[~sel]).all()
    assert not np.array_equal(ba[0][1], list(a.train_batches(0))[0][1])


def test_soft_labels_off_and_size_errors():
    cfg = load_config("lightclip", SMALL + ["loss.soft_labels=false"])
    d = LightCLIPData(cfg)
    assert all((b[2] == 0).all() for b in d.train_batches(1))
    with pytest.raises(ValueError, match="multiple of 32"):
        LightCLIPData(load_config("lightclip", SMALL + ["model.image_encoder=efficientnet_lite0", "data.img_size=[48,48]"]))
    with pytest.raises(Exception, match="soft_label_mode"):
        load_config("lightclip", ["loss.soft_label_mode=hard"])


def test_metrics_equal_hand_computed_values():
    sim = np.array([[0.9, 0.1, 0.2], [0.8, 0.3, 0.1], [0.1, 0.2, 0.05]])
    # i2t ranks: row0 -> 0 (hit@1); row1 -> [0, 1, 2] hit at rank 2; row2 -> [1, 0, 2] hit at rank 3
    r = retrieval_recalls(sim, np.arange(3), ks=(1, 2))
    assert r["i2t_R1"] == pytest.approx(100 / 3) and r["i2t_R2"] == pytest.approx(200 / 3)
    # t2i (columns): col0 -> [0, 1, 2] hit@1; col1 -> [1, 2, 0] hit@1; col2 -> [0, 1, 2] hit at rank 3
    assert r["t2i_R1"] == pytest.approx(200 / 3) and r["t2i_R2"] == pytest.approx(200 / 3)
    # captions 1 and 2 equal: row2's top caption (1) is now relevant
    assert retrieval_recalls(sim, np.array([0, 1, 1]), ks=(1,))["i2t_R1"] == pytest.approx(200 / 3)
    feats = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.1]])
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    acc = zero_shot_accuracy(feats, classes, np.array([0, 1, 0]), np.array([False, False, True]))
    assert acc == {"zs_acc": pytest.approx(200 / 3), "zs_acc_held": 0.0, "zs_acc_seen": 100.0}


def test_every_lightclip_config_loads():
    from pathlib import Path

    names = sorted(p.name for p in Path("configs/lightclip").glob("*.yaml"))
    assert names == ["base.yaml", "demo.yaml", "lightclip_efficientnet_lite0.yaml", "lightclip_mobilenetv2.yaml"]
    encoders = {n: load_config(f"configs/lightclip/{n}").model.image_encoder for n in names}
    assert encoders["demo.yaml"] == "tiny_cnn" and encoders["lightclip_efficientnet_lite0.yaml"] == "efficientnet_lite0"
    with pytest.raises(Exception, match="alpha_shedule|nearest|alpha_schedule"):
        load_config("lightclip", ["loss.alpha_shedule=linear"])
