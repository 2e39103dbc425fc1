"""Gold-YOLO task wiring: configs, YOLOv6 parameter groups, loss selection and clear errors."""
import glob

import pytest

from common.config import ConfigError, load_config
from common.gold_yolo_groups import effective_weight_decay


@pytest.mark.parametrize("path", sorted(glob.glob("configs/gold_yolo/*.yaml")))
def test_gold_yolo_every_config_loads(path):
    cfg = load_config(path)
    assert cfg.family == "gold_yolo"
    if "distill" in path:
        assert cfg.distill.enabled and cfg.model.head == ("distill_ns" if cfg.model.variant in "ns" else "plain")
    if "fuseab" in path:
        assert cfg.model.head == "fuse_ab"


def test_gold_yolo_recipe_values():
    n, s, m, l = (load_config(f"configs/gold_yolo/gold_yolo_{v}.yaml") for v in "nsml")
    assert (n.loss.iou_type, s.loss.iou_type, m.loss.iou_type, l.loss.iou_type) == ("siou", "giou", "giou", "giou")
    assert (m.aug.mixup, l.aug.mixup, n.aug.mixup) == (0.1, 0.1, 0.0)
    assert (m.distill.cls_weight, l.distill.cls_weight, n.distill.cls_weight) == (0.8, 2.0, 1.0)
    assert n.optim.momentum == 0.937 and n.optim.nesterov and n.schedule.lrf == 0.01
    assert n.schedule.warmup_momentum == 0.8 and n.solver.warmup_bias_lr == 0.1
    assert n.aug_schedule.stop_aug_last_n_epoch == 15 and n.ema.decay == 0.9999 and n.ema.tau == 2000.0


def test_gold_yolo_weight_decay_scaling_matches_the_official_rule():
    # wd * batch * max(1, round(64 / batch)) / 64: 2e-3 at 256, 1e-3 at 128, unchanged at 16 and 64
    assert effective_weight_decay(5e-4, 256) == pytest.approx(2e-3)
    assert effective_weight_decay(5e-4, 128) == pytest.approx(1e-3)
    assert effective_weight_decay(5e-4, 16) == pytest.approx(5e-4)
    assert effective_weight_decay(5e-4, 64) == pytest.approx(5e-4)


def test_gold_yolo_bad_override_names_the_key():
    with pytest.raises(ConfigError, match="choices"):
        load_config("gold_yolo", ["model.variant=x"])
    with pytest.raises(ConfigError, match="nearest valid keys: model.head"):
        load_config("gold_yolo", ["model.heads=plain"])


def _small_cfg(*extra):
    return load_config("gold_yolo", ["data.demo_train_images=4", "data.demo_val_images=2", "data.img_size=128",
                                     "train.batch_size=2", "data.workers=0", *extra])


def test_gold_yolo_param_groups_follow_yolov6_in_both_frameworks():
    from ms_models.gold_yolo.task import build_task as ms_task
    from pt_reference.gold_yolo.task import build_task as pt_task
    cfg = _small_cfg("model.variant=m")       # M has BottleRep.alpha
    for build in (ms_task, pt_task):
        task = build(cfg)
        groups = {g["name"]: g for g in task.param_groups(task.model)}
        assert set(groups) == {"bn_weight", "weight", "bias"}
        assert groups["bias"]["warmup_start_lr"] == 0.1 and groups["bias"]["weight_decay"] == 0.0
        assert groups["bn_weight"]["weight_decay"] == 0.0
        assert groups["weight"]["weight_decay"] == pytest.approx(effective_weight_decay(5e-4, 2))
        sizes = {k: len(g["params"]) for k, g in groups.items()}
        names = {id(p) for g in groups.values() for p in g["params"]}
        if build is ms_task:
            ms_sizes = sizes
            all_params = {p.name: p for p in task.model.get_parameters()
                          if not p.name.endswith(("moving_mean", "moving_variance"))}
        else:
            assert sizes == ms_sizes, (sizes, ms_sizes)
            all_params = dict(task.model.named_parameters())
        left_out = sorted(n for n, p in all_params.items() if id(p) not in names)
        # never optimised: BottleRep.alpha, the DFL projection; nothing else
        assert left_out and all(n.endswith(".alpha") or n.startswith("detect.proj") for n in left_out), left_out
        assert any(n.endswith(".alpha") for n in left_out)


def test_gold_yolo_distill_needs_a_teacher():
    from ms_models.gold_yolo.task import build_task
    with pytest.raises(ValueError, match="distill.teacher_ckpt"):
        build_task(_small_cfg("distill.enabled=true", "model.head=distill_ns"))
    with pytest.raises(ValueError, match="step-2 student head"):
        build_task(_small_cfg("model.head=distill_ns"))
