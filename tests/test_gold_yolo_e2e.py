"""The main job end to end, shortened: ``bash scripts/run_train_ascend.sh gold_yolo`` with 3 compiled
(GRAPH mode) steps on the built-in data, then COCO evaluation and the run folder's artefacts; then the
same checkpoint through ``scripts/eval.py``."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, timeout):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_gold_yolo_main_job_trains_evaluates_and_writes_its_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    out = _run(["bash", "scripts/run_train_ascend.sh", "gold_yolo", "--device", "auto",
                "--set", "train.epochs=1", "--set", "train.max_steps=3", "--set", "eval.plot_images=4",
                "--run-dir", str(run_dir)], timeout=1200)
    assert "device CPU" in out and "built-in synthetic detection set" in out
    assert "mAP50_95" in out
    for name in ("config.yaml", "train.log", "metrics.jsonl", "metrics.json", "last.ckpt", "loss_curve.png",
                 "predictions.png", "eval/coco_eval.md", "eval/predictions.json"):
        assert (run_dir / name).is_file(), f"missing {name} in the run folder"
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if "loss" in r]
    assert len(losses) == 3 and all(0 < v < 100 for v in losses)
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["primary"] == "mAP50_95" and 0.0 <= final["mAP50"] <= 1.0

    out = _run([sys.executable, "scripts/eval.py", "--config", "gold_yolo", "--ckpt", str(run_dir / "last.ckpt"),
                "--device", "CPU", "--set", "eval.plot_images=0", "--out", str(tmp_path / "eval")], timeout=600)
    assert "mAP50" in out
