"""Trainer behaviour in both frameworks: exact resume, non-finite loss stop, atomic checkpoints,
the run folder, mixed precision on CPU, and the train/eval scripts end to end."""
import json
import os

import numpy as np
import pytest
import mindspore as ms
import torch

from common.runlog import read_jsonl
from common.train_loop import NonFiniteLossError
from engine_toy import build_ms_task, build_pt_task, ms_state, pt_state, toy_config, write_toy_yaml
import ms_models.engine.checkpoint as ms_ckpt
import pt_reference.engine.checkpoint as pt_ckpt
from ms_models.engine import Trainer as MsTrainer
from pt_reference.engine import Trainer as PtTrainer

ms.set_device("CPU")
ms.runtime.launch_blocking()

FRAMEWORKS = {"ms": (build_ms_task, MsTrainer, ms_state, ".ckpt"),
              "pt": (build_pt_task, PtTrainer, pt_state, ".pt")}


def _resume_cfg(max_steps, eval_interval=0):
    # every piece of state is exercised: momentum warm-up, per-iteration cosine, clipping, EMA, 3 groups
    return toy_config(train={"epochs": 2, "max_steps": max_steps, "grad_clip": 1.0, "log_interval": 0,
                             "eval_interval": eval_interval},
                      optim={"lr": 0.2, "momentum": 0.9},
                      schedule={"warmup_epochs": 0.5, "warmup_momentum": 0.5, "per_iter": True, "lrf": 0.1},
                      ema={"decay": 0.9, "tau": 3.0}, groups="yolo", steps=4)


def _losses(run_dir):
    return [(r["step"], r["loss"], r["ce"]) for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]


@pytest.mark.parametrize("fw", ["ms", "pt"])
def test_resume_continues_the_same_loss_curve(fw, tmp_path):
    build, trainer_cls, state_of, suffix = FRAMEWORKS[fw]
    # the straight run also evaluates (EMA swapped in) after epoch 1 (step 4): training must not notice
    straight_task = build(_resume_cfg(6, eval_interval=1))
    straight = trainer_cls(straight_task, _resume_cfg(6, eval_interval=1), tmp_path / "straight").fit()
    first = trainer_cls(build(_resume_cfg(3)), _resume_cfg(3), tmp_path / "split").fit()
    assert first["train"]["steps"] == 3
    resumed_task = build(_resume_cfg(6))
    resumed = trainer_cls(resumed_task, _resume_cfg(6), tmp_path / "split").fit(
        resume=tmp_path / "split" / f"last{suffix}")
    a, b = _losses(tmp_path / "straight"), _losses(tmp_path / "split")
    assert [s for s, _, _ in a] == [s for s, _, _ in b] == [1, 2, 3, 4, 5, 6]
    worst = max(abs(x[1] - y[1]) for x, y in zip(a, b))
    print(f"{fw} resume: straight {[round(x[1], 6) for x in a]}, 3+3 {[round(y[1], 6) for y in b]}, "
          f"max |diff| {worst:.2e}")
    assert worst <= 1e-6
    assert max(abs(x[2] - y[2]) for x, y in zip(a, b)) <= 1e-6
    wa, wb = state_of(straight_task.model), state_of(resumed_task.model)
    wdiff = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    print(f"{fw} resume: final weights max |diff| {wdiff:.2e}")
    assert wdiff <= 1e-6
    assert resumed["acc"] == straight["acc"]                           # the EMA weights match too
    assert resumed["logit_sum"] == pytest.approx(straight["logit_sum"], abs=1e-5)
    assert resumed_task.epochs_seen == [0, 1]                          # set_epoch on resume, then the next epoch
    init = state_of(build(_resume_cfg(6)).model)
    assert min(float(np.abs(wa[k] - init[k]).max()) for k in ("conv.weight", "fc.weight", "fc.bias", "bn.bias")) > 1e-3
    # the run folder
    run = tmp_path / "straight"
    for name in ("config.yaml", "train.log", "metrics.jsonl", "metrics.json", f"last{suffix}", f"best{suffix}",
                 "last.json", "best.json", "loss_curve.png"):
        assert (run / name).is_file(), name
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = json.loads((run / "metrics.json").read_text())
    assert final["primary"] == "acc" and final["train"]["steps"] == 6
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "eval" in r] == [4, 6]
    assert json.loads((run / "last.json").read_text())["step"] == 6
    assert not [p for p in os.listdir(run) if ".tmp" in p]


@pytest.mark.parametrize("fw", ["ms", "pt"])
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(fw, tmp_path):
    build, trainer_cls, state_of, suffix = FRAMEWORKS[fw]
    cfg = toy_config(train={"epochs": 2, "save_interval_steps": 2, "log_interval": 0}, nan_at=4)
    with pytest.raises(NonFiniteLossError) as err:
        trainer_cls(build(cfg), cfg, tmp_path).fit()
    msg = str(err.value)
    print(msg)
    assert "step 5" in msg and "penalty=nan" in msg and "ce=" in msg and "(step 4) is kept" in msg
    assert json.loads((tmp_path / "last.json").read_text())["step"] == 4
    if fw == "ms":
        arrays, meta = ms_ckpt.load_state(tmp_path / "last.ckpt")
    else:
        payload, meta = pt_ckpt.load_state(tmp_path / "last.pt")
        arrays = {f"model.{k}": v.numpy() for k, v in payload["model"].items()}
    assert meta["step"] == 4
    assert all(np.isfinite(v).all() for k, v in arrays.items() if k.startswith("model."))
    assert "non-finite loss at step 5" in (tmp_path / "train.log").read_text()


def _failing_write(obj, target, *args, **kwargs):
    with open(target, "wb") as f:                              # a partial file, then the crash
        f.write(b"partial")
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("fw", ["ms", "pt"])
def test_interrupted_checkpoint_write_leaves_previous_file_and_no_partial(fw, tmp_path, monkeypatch):
    path = tmp_path / f"last.{'ckpt' if fw == 'ms' else 'pt'}"
    good = np.arange(6, dtype=np.float32).reshape(2, 3)
    if fw == "ms":
        ms_ckpt.save_state(path, {"model.w": good}, {"step": 1})
        monkeypatch.setattr(ms_ckpt.ms, "save_checkpoint", _failing_write)
        with pytest.raises(OSError, match="simulated"):
            ms_ckpt.save_state(path, {"model.w": good * 2}, {"step": 2})
        arrays, meta = ms_ckpt.load_state(path)
        np.testing.assert_array_equal(arrays["model.w"], good)
    else:
        pt_ckpt.save_state(path, {"model": {"w": torch.from_numpy(good)}}, {"step": 1})
        monkeypatch.setattr(pt_ckpt.torch, "save", _failing_write)
        with pytest.raises(OSError, match="simulated"):
            pt_ckpt.save_state(path, {"model": {"w": torch.from_numpy(good * 2)}}, {"step": 2})
        payload, meta = pt_ckpt.load_state(path)
        np.testing.assert_array_equal(payload["model"]["w"].numpy(), good)
    assert meta == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_ms_pynative_step_matches_graph_step(tmp_path):
    runs = {}
    for mode in (True, False):
        cfg = toy_config(train={"epochs": 1, "log_interval": 0, "graph_mode": mode}, ema={"enabled": False})
        task = build_ms_task(cfg)
        out = MsTrainer(task, cfg, tmp_path / str(mode)).fit()
        runs[mode] = (_losses(tmp_path / str(mode)), ms_state(task.model), out)
    loss_diff = max(abs(x[1] - y[1]) for x, y in zip(runs[True][0], runs[False][0]))
    w_diff = max(float(np.abs(runs[True][1][k] - runs[False][1][k]).max()) for k in runs[True][1])
    print(f"GRAPH vs PyNative step: max loss diff {loss_diff:.2e}, max weight diff {w_diff:.2e}")
    assert loss_diff <= 1e-6 and w_diff <= 1e-6
    assert runs[False][2]["acc"] == runs[True][2]["acc"]


def test_ms_mixed_precision_o2_with_dynamic_loss_scale_trains_on_cpu(tmp_path):
    base = {"epochs": 1, "log_interval": 0}
    ref = MsTrainer(build_ms_task(toy_config(train=base)), toy_config(train=base), tmp_path / "fp32").fit()
    amp = {**base, "amp": "O2", "loss_scale": "dynamic"}
    cfg = toy_config(train=amp)
    trainer = MsTrainer(build_ms_task(cfg), cfg, tmp_path / "o2")
    out = trainer.fit()
    assert trainer.amp_level == "O2" and trainer.loss_scale is not None
    a, b = _losses(tmp_path / "fp32"), _losses(tmp_path / "o2")
    worst = max(abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(a, b))
    print(f"O2 + dynamic loss scale vs fp32: losses {[round(y[1], 5) for y in b]}, max rel diff {worst:.2e}, "
          f"scale {float(trainer.loss_scale.scale_value.asnumpy())}")
    assert worst <= 1e-2
    assert np.isfinite(out["logit_sum"]) and out["train"]["steps"] == 3
    arrays, _ = ms_ckpt.load_state(tmp_path / "o2" / "last.ckpt")
    assert "loss_scale.value" in arrays


@pytest.mark.parametrize("fw", ["ms", "pt"])
def test_train_and_eval_scripts_end_to_end(fw, tmp_path, capsys):
    from scripts import eval as eval_script
    from scripts import train as train_script
    cfg_path = write_toy_yaml(tmp_path / "toy.yaml", train={"epochs": 1, "log_interval": 0})
    build = f"engine_toy:build_{fw}_task"
    run = tmp_path / "run"
    rc = train_script.main(["--config", str(cfg_path), "--framework", fw, "--device", "CPU", "--task", build,
                            "--run-dir", str(run), "--set", "optim.lr=0.05", "ema.tau=2.0"])
    assert rc == 0
    final = json.loads((run / "metrics.json").read_text())
    assert f"acc: {final['acc']}" in capsys.readouterr().out
    snapshot = (run / "config.yaml").read_text()
    assert "lr: 0.05" in snapshot and "tau: 2.0" in snapshot
    suffix = ".ckpt" if fw == "ms" else ".pt"
    rc = eval_script.main(["--config", str(cfg_path), "--framework", fw, "--device", "CPU", "--task", build,
                           "--ckpt", str(run / f"best{suffix}"), "--out", str(tmp_path / "ev")])
    assert rc == 0
    ev = json.loads((tmp_path / "ev" / "eval_metrics.json").read_text())
    print(f"{fw}: trainer final {final['acc']}, {final['logit_sum']:.6f}; eval.py {ev['acc']}, {ev['logit_sum']:.6f}")
    assert ev["acc"] == final["acc"]
    assert ev["logit_sum"] == pytest.approx(final["logit_sum"], rel=1e-6)
    # --resume auto finds the newest run of this config under train.output_dir and continues it
    runs_root = tmp_path / "runs"
    common = ["--config", str(cfg_path), "--framework", fw, "--device", "CPU", "--task", build,
              "--set", f"train.output_dir={runs_root}"]
    assert train_script.main(common) == 0
    (first,) = list(runs_root.iterdir())
    assert first.name.endswith("_toy")
    assert train_script.main(common + ["train.epochs=2", "--resume", "auto"]) == 0
    assert list(runs_root.iterdir()) == [first]
    steps = [r["step"] for r in read_jsonl(first / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "resumed from" in (first / "train.log").read_text()
    capsys.readouterr()
    # an unknown key is refused with the config's message, not a traceback
    assert train_script.main(["--config", str(cfg_path), "--framework", fw, "--task", build,
                              "--set", "optim.lrr=1"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_device_auto_falls_back_to_cpu_and_says_why():
    from ms_models.engine import select_device
    lines = []
    assert select_device("auto", log=lines.append) == "CPU"
    print(lines)
    assert "Ascend not available" in lines[0] and "GPU not available" in lines[0] and "using CPU" in lines[0]
    with pytest.raises(RuntimeError, match="requested device Ascend is not available"):
        select_device("Ascend", log=lines.append)
