"""A pruned RPG checkpoint keeps its exact zeros through MindSpore -> PyTorch -> MindSpore conversion
(scripts/convert_weights.py with the ``rpg_sparse`` layout) and through MINDIR export (the weights
stored in the MINDIR protobuf are read back byte for byte); masks and the step counter survive an
engine checkpoint in both frameworks."""
import importlib.util
import os
from pathlib import Path

os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ms_models  # noqa: E402
from common.config import load_config  # noqa: E402
from common.weights import read_weights, write_weights  # noqa: E402
from ms_models.export import export_network, load_exported  # noqa: E402
from ms_models.rpg.deploy import build_export_net  # noqa: E402
from ms_models.rpg.pruner import RigLPruner  # noqa: E402
from ms_models.rpg.schedule import PruneSchedule  # noqa: E402
from ms_models.utils.weights import state_numpy  # noqa: E402

ms.set_device("CPU")
ms.runtime.launch_blocking()
REPO = Path(__file__).resolve().parents[1]
MODEL_KW = ["base=rpg_cifar_resnet8", "num_classes=8", "width=8"]


def _convert(argv):
    spec = importlib.util.spec_from_file_location("convert_weights", REPO / "scripts" / "convert_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


def _pruned_ms_net():
    """rpg_sparse ResNet-8 pruned to 80 % by one global magnitude update (exact zeros, masks set)."""
    net = ms_models.create_model("rpg_sparse", base="rpg_cifar_resnet8", num_classes=8, width=8)
    sched = PruneSchedule(total_steps=100, sparsity=0.8, delta=10, alpha=0.3, iterative_t_end_percent=0.1)
    pruner = RigLPruner(net, sched)
    rng = np.random.default_rng(0)
    for g in pruner.dense_grads:
        ms.ops.assign(g, ms.Tensor(rng.standard_normal(g.shape).astype(np.float32)))
    pruner.update(20)  # update index 1 = U: density 0.2 at once, then RigL
    pruner.set_steps_done(20)
    for w in pruner.weights:  # grown connections start at exactly 0: give them values
        v = w.asnumpy()
        ms.ops.assign(w, ms.Tensor(np.where(v == 0, 0, v).astype(np.float32)))
    return net, pruner


def test_rpg_zeros_survive_conversion_both_ways(tmp_path):
    net, pruner = _pruned_ms_net()
    src = state_numpy(net)
    assert pruner.mask_sparsity() > 0.79
    ckpt, pth, back = tmp_path / "pruned.ckpt", tmp_path / "pruned.pth", tmp_path / "back.ckpt"
    write_weights(ckpt, src)
    assert _convert(["--src", str(ckpt), "--dst", str(pth), "--model", "rpg_sparse", "--model-kw", *MODEL_KW]) == 0
    pt_state = read_weights(pth)
    assert _convert(["--src", str(pth), "--dst", str(back), "--model", "rpg_sparse", "--model-kw", *MODEL_KW]) == 0
    again = read_weights(back)
    n_zero = 0
    for name in pruner.names:
        zeros = src[name] == 0
        n_zero += int(zeros.sum())
        assert np.array_equal(pt_state[name] == 0, zeros), f"{name}: zero pattern changed in the .pth"
        assert np.array_equal(pt_state[name], src[name]) and np.array_equal(again[name], src[name])
        mask = name.replace(".weight", ".weight_mask")
        assert np.array_equal(pt_state[mask], src[mask]) and np.array_equal(again[mask], src[mask])
    assert set(again) == set(src) and all(np.array_equal(again[k], src[k]) for k in src)
    assert pt_state["rpg_step"].tolist() == [20]
    assert n_zero >= 0.79 * sum(src[n].size for n in pruner.names)
    # the PyTorch twin loads it strictly and sees the same zeros
    import pt_reference
    from pt_reference.utils.weights import load_numpy_state
    pt_net = pt_reference.create_model("rpg_sparse", base="rpg_cifar_resnet8", num_classes=8, width=8)
    # common.weights reads the 0-d num_batches_tracked back from a .pth as shape (1,) (shared quirk)
    load_numpy_state(pt_net, {k: v.reshape(()) if k.endswith("num_batches_tracked") else v
                              for k, v in pt_state.items()}, strict=True)
    assert all(torch.equal(pt_net.state_dict()[n] == 0, torch.from_numpy(src[n] == 0)) for n in pruner.names)


def _mindir_tensors(path):
    from mindspore.train import mind_ir_pb2
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(Path(path).read_bytes())
    out = {}
    for p in model.graph.parameter:
        name = p.name.split(":")[-1]
        out[name] = np.frombuffer(p.raw_data, dtype=np.float32).reshape(tuple(p.dims))
    return out


def test_rpg_zeros_survive_mindir_export(tmp_path):
    net, pruner = _pruned_ms_net()
    weights = state_numpy(net)
    cfg = load_config("rpg", ["model.name=rpg_cifar_resnet8", "model.kwargs={width: 8}", "data.img_size=16"])
    deploy, chw, dyn = build_export_net(cfg, weights)
    assert chw == (3, 16, 16) and dyn
    assert not any(k.endswith("weight_mask") or k == "rpg_step" for k in deploy.parameters_dict())
    path = export_network(deploy, (1, *chw), tmp_path / "rpg", "MINDIR", dynamic_batch=True)
    stored = _mindir_tensors(path)
    for name in pruner.names:
        assert name in stored, f"{name} not among the MINDIR parameters {sorted(stored)[:5]}"
        assert np.array_equal(stored[name], weights[name]), f"{name}: MINDIR bytes differ from the checkpoint"
        assert int((stored[name] == 0).sum()) == int((weights[name] == 0).sum()) > 0
    x = np.random.default_rng(1).random((3, *chw), dtype=np.float32)
    ref = deploy(ms.Tensor(x)).asnumpy()
    got = load_exported(path)(x)[0]
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_rpg_masks_survive_engine_checkpoints(tmp_path):
    """Masks, pruned weights and rpg_step go into the engine checkpoint and come back into a fresh
    task (MindSpore and PyTorch trainers)."""
    from ms_models.engine.trainer import Trainer as MSTrainer
    from ms_models.rpg.task import build_task as ms_build
    from pt_reference.engine.trainer import Trainer as PTTrainer
    from pt_reference.rpg.task import build_task as pt_build

    cfg = load_config("rpg", ["model.name=rpg_cifar_resnet8", "model.kwargs={width: 4}", "data.img_size=16",
                              "data.batch_size=16", "train.epochs=1", "rpg.delta=2",
                              "rpg.iterative_t_end_percent=0.05"])
    for build, trainer_cls, suffix in ((ms_build, MSTrainer, ".ckpt"), (pt_build, PTTrainer, ".pt")):
        task = build(cfg)
        trainer = trainer_cls(task, cfg, tmp_path / suffix[1:])
        task.after_step(2)
        task.after_step(4)  # update index 1 = U: density 0.05 reached
        masks = [np.array(m.asnumpy() if hasattr(m, "asnumpy") else m.numpy()) for m in task.pruner.masks]
        assert 1 - sum(m.sum() for m in masks) / sum(m.size for m in masks) > 0.94
        path = tmp_path / f"state{suffix}"
        trainer._save_checkpoint(path, trainer._meta())
        fresh = build(cfg)
        trainer_cls(fresh, cfg, tmp_path / f"{suffix[1:]}2")._load_checkpoint(path)
        assert fresh.pruner.steps_done() == 4
        for name, m, m2, w, w2 in zip(task.pruner.names, masks, fresh.pruner.masks, task.pruner.weights,
                                      fresh.pruner.weights):
            m2 = m2.asnumpy() if hasattr(m2, "asnumpy") else m2.numpy()
            w = w.asnumpy() if hasattr(w, "asnumpy") else w.detach().numpy()
            w2 = w2.asnumpy() if hasattr(w2, "asnumpy") else w2.detach().numpy()
            assert np.array_equal(m, m2) and np.array_equal(w, w2), f"{suffix}: {name} not restored"


def test_rpg_pretrained_dense_weights_load(tmp_path):
    """``rpg.pretrained_weights``: a dense PyTorch-named checkpoint of the plain network starts the
    MindSpore RPG run (masks stay all-ones, rpg_step 0)."""
    import pt_reference
    from ms_models.rpg.task import build_task
    from pt_reference.utils.weights import state_numpy as pt_state_numpy

    torch.manual_seed(3)
    dense = pt_reference.create_model("rpg_cifar_resnet8", num_classes=8, width=4)
    path = tmp_path / "dense.pth"
    write_weights(path, pt_state_numpy(dense))
    cfg = load_config("rpg", ["model.name=rpg_cifar_resnet8", "model.kwargs={width: 4}", "data.img_size=16",
                              f"rpg.pretrained_weights={path}"])
    task = build_task(cfg)
    for name, w in zip(task.pruner.names, task.pruner.weights):
        assert np.array_equal(w.asnumpy(), dense.state_dict()[name].numpy()), name
    assert all(float(m.asnumpy().min()) == 1.0 for m in task.pruner.masks) and task.pruner.steps_done() == 0
