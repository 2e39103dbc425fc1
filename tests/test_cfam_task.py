"""CFAM task through the MindSpore engine with the compiled (GRAPH mode) train step: the weights of
every module move, the run ends with the retrieval metrics, and the checkpoint reloads for evaluation."""
import numpy as np

from common.config import load_config
from ms_models.cfam.task import build_task
from ms_models.engine import Trainer
from ms_models.engine.checkpoint import read_eval_weights
from ms_models.utils.weights import load_numpy_state, state_numpy

TINY = ["model.embed_dim=32", "model.vision_width=32", "model.vision_layers=1", "model.text_width=32",
        "model.text_layers=1", "model.text_length=40", "model.num_queries=4", "data.img_size=[32,16]",
        "model.vision_patch_size=8", "data.synthetic_ids=16", "data.synthetic_images_per_id=2",
        "data.batch_size=8", "train.epochs=1", "train.max_steps=3", "train.log_interval=0", "data.img_aug=true"]


def test_graph_mode_training_moves_every_module_and_evaluates(tmp_path, capsys):
    cfg = load_config("cfam", TINY)
    assert cfg.train.graph_mode is True
    task = build_task(cfg)
    assert "built-in synthetic person set" in capsys.readouterr().out
    assert task.loss_names == ("sdm", "id", "gran", "match")
    before = {k: v.copy() for k, v in state_numpy(task.model).items()}
    metrics = Trainer(task, cfg, tmp_path / "run").fit()
    after = state_numpy(task.model)
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    frozen = set(before) - moved
    assert frozen == {"base_model.logit_scale"}, sorted(frozen)[:5]
    for prefix in ("base_model.visual.", "base_model.transformer.", "classifier.", "granularity_decoder.",
                   "granularity_queries", "match_head."):
        assert any(k.startswith(prefix) for k in moved), prefix
    assert metrics["primary"] == "R1"
    for key in ("R1", "R5", "R10", "mAP", "mINP", "mSD", "mSD_ranked", "mSD_released", "fine_R1", "coarse_R1"):
        assert 0.0 <= metrics[key] <= 100.0, key
    fresh = build_task(cfg)
    load_numpy_state(fresh.model, read_eval_weights(tmp_path / "run" / "last.ckpt"))
    again = fresh.evaluate(fresh.model)
    assert again["R1"] == metrics["R1"] and abs(again["mAP"] - metrics["mAP"]) < 1e-9


def test_every_variant_config_loads_and_names_its_options():
    import glob

    import pytest

    from common.cfam_config import loss_weights, make_groups, model_kwargs
    from common.config import ConfigError

    for path in sorted(glob.glob("configs/cfam/*.yaml")):
        cfg = load_config(path)
        kw = model_kwargs(cfg, 11)
        assert kw["clip_kwargs"]["image_resolution"] == tuple(cfg.data.img_size), path
        assert set(kw["losses"]) == set(loss_weights(cfg)), path
    full = load_config("configs/cfam/cfam_ufine6926.yaml")
    assert full.model.text_length == 168 and tuple(full.data.img_size) == (384, 128)
    assert loss_weights(load_config("configs/cfam/irra_cuhk_pedes.yaml")) == {"sdm": 1.0, "id": 1.0, "mlm": 1.0}
    with pytest.raises(ConfigError, match="granularity_pool"):
        load_config("cfam", ["model.granularity_pool=max"])
    with pytest.raises(ValueError, match="all loss weights are 0"):
        loss_weights(load_config("cfam", [f"loss.{n}=0" for n in ("sdm", "itc", "id", "mlm", "gran", "match")]))
    groups = make_groups([("base_model.visual.proj", 1), ("base_model.ln_final.beta", 2), ("classifier.weight", 3),
                          ("match_head.cross_attn.in_proj_bias", 4)], full)
    assert [(g["name"], g["params"], g["lr_scale"], g["weight_decay"]) for g in groups] == [
        ("base", [1], 1.0, 4e-5), ("base_bias", [2], 2.0, 0.0), ("new", [3], 5.0, 4e-5), ("new_bias", [4], 5.0, 0.0)]


def test_pretrained_openai_checkpoint_loads_into_both_tasks(tmp_path):
    """An official-format CLIP state dict (square 32 px, 16 text positions; written with torch.save)
    goes through ``model.pretrained``: grid 4x4 -> 4x2, text table 16 -> 40, strict in both trees."""
    import importlib.util
    import os

    import torch

    from common.data.person_retrieval import RetrievalData
    from common.weights.openai_clip import prepare_clip_state
    from pt_reference.cfam.task import CFAMTask as PtTask

    folder = list(importlib.util.find_spec("clip").submodule_search_locations)[0]
    spec = importlib.util.spec_from_file_location("openai_clip_model", os.path.join(folder, "model.py"))
    official = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official)
    torch.manual_seed(0)
    ref = official.CLIP(32, 32, 1, 64, 8, 16, 49408, 32, 2, 1)
    state = {k: v.float() for k, v in ref.state_dict().items()}
    torch.save(state, tmp_path / "clip.pt")
    cfg = load_config("cfam", TINY + [f"model.pretrained={tmp_path / 'clip.pt'}", "model.vision_heads=1",
                                      "model.vision_width=64", "model.text_heads=2", "loss.gran=0", "loss.match=0"])
    data = RetrievalData(cfg)
    ms_task, pt_task = build_task(cfg), PtTask(cfg, data)
    expect = prepare_clip_state({k: v.numpy() for k, v in state.items()}, grid_hw=(4, 2), context_length=40)
    got_pt = {k: v.numpy() for k, v in pt_task.model.base_model.state_dict().items()}
    assert set(got_pt) == set(expect)
    for k, v in expect.items():
        np.testing.assert_array_equal(got_pt[k], v, err_msg=k)
    got_ms = {k[len("base_model."):]: v for k, v in state_numpy(ms_task.model.base_model).items()}
    np.testing.assert_array_equal(got_ms["visual.positional_embedding"], expect["visual.positional_embedding"])
    np.testing.assert_array_equal(got_ms["token_embedding.embedding_table"], expect["token_embedding.weight"])
    np.testing.assert_array_equal(got_ms["visual.transformer.resblocks.0.ln_1.gamma"],
                                  expect["visual.transformer.resblocks.0.ln_1.weight"])
    assert got_ms["logit_scale"].shape == () and len(got_ms) == len(expect)
