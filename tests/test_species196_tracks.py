"""Species196 tracks through the MindSpore task: the zero-shot track end to end with scripts/train.py
(CLIP-style scorer over this project's tiny image-text model, and the stub answer model), the
track_settings mechanism, and ms.jit tracing of the FixMatch and MAE losses."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from common.config import ConfigError, load_config
from common.data.species196_fixture import species196_fixture_root
from common.data.species196_tracks import apply_track_settings
from common.zero_shot import AnswerParser, ClipScorer, render_prompts, resolve_templates
from ms_models.species196.task import build_task
from ms_models.species196.zero_shot import RegistryImageTextModel

ms.set_device("CPU")
ms.runtime.launch_blocking()
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return species196_fixture_root(tmp_path_factory.mktemp("s196"), train_per_class=4, val_per_class=2, unlabeled=12)


def _over(root, tmp_path, *extra):
    return [f"data.root={root}", "data.img_size=32", "data.workers=0", "data.eval_batch_size=12",
            f"train.output_dir={tmp_path}", *extra]


def test_track_settings_apply_before_command_line(root, tmp_path):
    cfg = load_config("species196", _over(root, tmp_path, "track=mae_pretrain", "optim.lr=0.01"))
    apply_track_settings(cfg)
    assert cfg.optim.name == "adamw" and cfg.optim.betas == [0.9, 0.95]      # from track_settings.mae_pretrain
    assert cfg.optim.lr == 0.01                                              # --set wins
    with pytest.raises(ConfigError, match="track"):
        load_config("species196", ["track=semi"])


def test_zero_shot_clip_track_end_to_end(root, tmp_path):
    import train
    run = tmp_path / "run"
    rc = train.main(["--config", "species196", "--run-dir", str(run), "--set",
                     *_over(root, tmp_path, "track=zero_shot", "zero_shot.model=clip",
                            "zero_shot.clip_model=species196_tiny_clip", "zero_shot.context_length=40")])
    assert rc == 0
    result = json.loads((run / "species196_metrics.json").read_text(encoding="utf-8"))
    lm = json.loads((run / "label_map.json").read_text(encoding="utf-8"))
    assert [r["category_id"] for r in lm["classes"]] == [3, 7, 11, 12, 25, 31]
    assert [r["name"] for r in lm["classes"]][:2] == ["Cydia", "Cydia"]
    assert (run / "confusion.png").stat().st_size > 1000 and "| genus |" in (run / "species196_report.md").read_text()
    # the same numbers from the scorer built here over the same (seeded) tiny model
    cfg = load_config("species196", _over(root, tmp_path, "track=zero_shot"))
    task = build_task(cfg)
    ms.set_seed(0)
    model = RegistryImageTextModel("species196_tiny_clip", {}, None, 40)
    cats, ids = task.data.categories, task.data.class_ids
    scorer = ClipScorer(model, [render_prompts(resolve_templates("clip_species"), cats[c]) for c in ids], 100.0)
    logits = np.concatenate([scorer.logits(x) for x, _ in task.val_batches])
    labels = np.concatenate([y for _, y in task.val_batches])
    assert result["metrics"]["top1"] == pytest.approx(100.0 * float((logits.argmax(1) == labels).mean()))
    assert result["metrics"]["num_images"] == len(labels) == 12


def test_zero_shot_stub_answers_are_parsed_by_name(root, tmp_path):
    cfg = load_config("species196", _over(root, tmp_path, "track=zero_shot"))
    task = build_task(cfg)
    out = task.evaluate(task.model, tmp_path / "zs")
    rows = [json.loads(line) for line in (tmp_path / "zs" / "zero_shot_answers.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    parser = AnswerParser(task.data.categories, task.data.class_ids)
    ids = task.data.class_ids
    hits = [len(c) == 1 and ids[c[0]] == r["label"] for r in rows for c in [parser.parse(r["answer"])]]
    assert out["top1"] == pytest.approx(100.0 * np.mean(hits))
    genus_only = [r for r in rows if "genus Cydia" in r["answer"]]
    for r in genus_only:                       # both Cydia classes, never one of them by accident
        assert r["candidates"] == [3, 7]


@pytest.mark.parametrize("track", ["fixmatch"])
def test_losses_trace_under_jit(root, tmp_path, track):
    extra = ["model.kwargs.widths=[8, 16]", "fixmatch.mu=2", "data.batch_size=2"] if track == "fixmatch" else \
        ["mae.kwargs.embed_dim=32", "mae.kwargs.depth=1", "mae.kwargs.num_heads=2", "mae.kwargs.decoder_embed_dim=16",
         "mae.kwargs.decoder_depth=1", "mae.kwargs.decoder_num_heads=2", "data.batch_size=4"]
    cfg = load_config("species196", _over(root, tmp_path, f"track={track}", *extra))
    task = build_task(cfg)
    batch = [ms.Tensor(a) for a in next(iter(task.train_batches(0)))]
    task.model.set_train(False)
    eager = [float(c.asnumpy()) for c in task.forward_loss(task.model, *batch)[1]]
    model = task.model

    @ms.jit
    def traced(*b):
        return task.forward_loss(model, *b)[1]

    jitted = [float(c.asnumpy()) for c in traced(*batch)]
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
    assert len(eager) == len(task.loss_names) and eager[0] > 0


@pytest.mark.parametrize("name", ["supervised_resnet50", "supervised_deit_small", "fixmatch_resnet50",
                                  "mae_vit_base_pretrain", "mae_vit_base_linear_probe", "mae_vit_base_finetune",
                                  "zero_shot_clip", "demo"])
def test_variant_configs_load(name):
    cfg = load_config(f"configs/species196/{name}.yaml")
    assert cfg.family == "species196" and cfg.track in ("supervised", "fixmatch", "mae_pretrain", "linear_probe",
                                                        "finetune", "zero_shot")
    if name.startswith("mae"):
        assert cfg.mae.model == "mae_vit_base_patch16" and cfg.data.img_size == 224
