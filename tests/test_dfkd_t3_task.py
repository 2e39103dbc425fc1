"""DFKD-T3 task protocol on a tiny configuration (PyTorch twin, eager and fast): deterministic numpy
batches, parameter groups, and two engine iterations that move generator and student only."""
import json

import numpy as np
import pytest
import torch

from common.config import load_config

TINY = ["model.teacher_layers=1", "model.student_layers=1", "model.generator.vocab_size=300",
        "model.generator.hidden=32", "model.generator.ffn=64", "model.generator.heads=2",
        "data.demo_train_size=64", "data.demo_dev_size=32", "data.batch_size=8", "data.source_len=8",
        "data.gen_len=4", "data.max_len=16", "teacher.batch_size=16", "pretrain.steps=3", "pretrain.batch_size=8",
        "train.max_steps=2", "eval.num_generated=16"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import os
    os.environ["DFKD_T3_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    from pt_reference.dfkd_t3.task import build_task
    cfg = load_config("configs/dfkd_t3/demo.yaml", TINY + [f"train.output_dir={tmp_path_factory.mktemp('runs')}"])
    return cfg, build_task(cfg)


def test_batches_are_deterministic_and_static(built):
    cfg, task = built
    a, b = next(task.train_batches(0)), next(task.train_batches(0))
    pre, mask, labels, gumbel, tau = a
    assert pre.shape == mask.shape == (8, 10) and pre.dtype == np.int32
    assert gumbel.shape == (8, 2, 4, 300) and gumbel.dtype == np.float32
    assert np.all(tau == 1.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(next(task.train_batches(1))[3], gumbel)
    # the prompt (last prefix slot) is the label word of each row; [SEP] precedes it
    np.testing.assert_array_equal(pre[:, -1], task.vocab.prompt_ids[labels])
    assert np.all(pre[:, -2] == 1)


def test_param_groups_cover_generator_and_student_only(built):
    _, task = built
    groups = task.param_groups(task.model)
    ids = {id(p) for g in groups for p in g["params"]}
    own = {id(p) for p in list(task.model.generator.parameters()) + list(task.model.student.parameters())}
    assert ids == own
    assert not ids & {id(p) for p in task.model.teacher.parameters()}
    assert [g["name"] for g in groups] == ["generator_decay", "generator_no_decay", "student_decay", "student_no_decay"]


def test_engine_iterations_move_generator_and_student(built, tmp_path):
    from pt_reference.engine import Trainer
    from pt_reference.utils.weights import state_numpy
    cfg, task = built
    before = state_numpy(task.model)
    metrics = Trainer(task, cfg, tmp_path, device=torch.device("cpu")).fit()
    after = state_numpy(task.model)
    changed = {k.split(".")[0] for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {"generator", "student", "generator_steps", "student_steps"}
    assert float(task.model.generator_steps) == 2 and float(task.model.student_steps) == 2
    for key in ("student_metric", "teacher_metric", "distinct_1", "distinct_2", "teacher_confidence"):
        assert 0.0 <= metrics[key] <= 1.0
    rows = [json.loads(x) for x in (tmp_path / "generated.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(r["text"] for r in rows)
    assert torch.isfinite(torch.tensor([metrics["student_metric"]])).all()
