"""Data parallel: scripts/run_distribute_train_ascend.sh with 2 CPU workers (msrun + mccl for
MindSpore, torchrun + gloo for PyTorch) trains the toy task; both ranks end with identical weights,
equal to one process on the combined batch, and each rank saw half of every global batch.

The toy runs without BatchNorm here: BN statistics are per rank (no SyncBN), so only a model
without batch-coupled layers makes 2 x B/2 exactly equivalent to 1 x B.
"""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms

from common.config import load_config
from common.runlog import read_jsonl
from common.train_loop import shard_batch
from engine_toy import build_ms_task, build_pt_task, ms_state, pt_state, rel_diff, write_toy_yaml
from ms_models.engine import Trainer as MsTrainer
from pt_reference.engine import Trainer as PtTrainer

ms.set_device("CPU")
ms.runtime.launch_blocking()

REPO = Path(__file__).resolve().parents[1]
TOY = {"train": {"epochs": 1, "log_interval": 0}, "optim": {"lr": 0.1}, "ema": {"tau": 2.0},
       "toy": {"bn": False, "batch": 8, "steps": 3}}
SINGLE = {"ms": (build_ms_task, MsTrainer, ms_state), "pt": (build_pt_task, PtTrainer, pt_state)}


def test_shard_batch_gives_each_rank_its_contiguous_slice():
    x = np.arange(8 * 2).reshape(8, 2)
    y = np.arange(8)
    parts = [shard_batch((x, y), r, 2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(parts[1][1], [4, 5, 6, 7])
    with pytest.raises(ValueError, match="multiple of 3"):
        shard_batch((x, y), 0, 3)


@pytest.mark.parametrize("fw", ["ms", "pt"])
def test_two_process_data_parallel_matches_one_process(fw, tmp_path):
    launcher = "msrun" if fw == "ms" else "torchrun"
    assert shutil.which(launcher), f"{launcher} not on PATH (source scripts/env.sh)"
    cfg_path = write_toy_yaml(tmp_path / "toy.yaml", **TOY)
    dump = tmp_path / "dump"
    dump.mkdir()
    env = dict(os.environ, ENGINE_TOY_DUMP=str(dump), MSRUN_LOG_DIR=str(tmp_path / "logs"),
               CLUSTER_TIME_OUT="90", DIST_TIMEOUT="240",
               PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = ["bash", str(REPO / "scripts" / "run_distribute_train_ascend.sh"), str(cfg_path), "2",
           "--framework", fw, "--device", "CPU", "--task", f"engine_toy:build_{fw}_task_dumping",
           "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in sorted((tmp_path / "logs").glob("worker_*.log"))) \
        if fw == "ms" else ""
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}\n{logs}"
    ranks = [dict(np.load(dump / f"{fw}_rank{r}.npz")) for r in range(2)]
    for r in ranks:
        assert list(r.pop("local_batch")) == [4, 4, 4]                     # B/2 per rank, every step

    cfg = load_config(str(cfg_path))
    build, trainer_cls, state_of = SINGLE[fw]
    task = build(cfg)
    trainer_cls(task, cfg, tmp_path / "single").fit()
    single = state_of(task.model)

    rank_diff = max(float(np.abs(ranks[0][k] - ranks[1][k]).max()) for k in single)
    single_diff = max(rel_diff(ranks[0][k], single[k]) for k in single)
    a = np.array([r["loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r])
    b = np.array([r["loss"] for r in read_jsonl(tmp_path / "single" / "metrics.jsonl") if "loss" in r])
    print(f"{fw} 2-process DP: rank0 vs rank1 max |diff| {rank_diff:.2e}; vs 1 process max rel diff "
          f"{single_diff:.2e}; loss curves {a.round(6).tolist()} vs {b.round(6).tolist()}")
    assert rank_diff == 0.0
    assert single_diff <= 1e-5
    assert len(a) == len(b) == 3 and float(np.abs(a - b).max() / np.abs(b).max()) <= 1e-5
    init = state_of(build(cfg).model)
    assert max(float(np.abs(single[k] - init[k]).max()) for k in single) > 1e-2
