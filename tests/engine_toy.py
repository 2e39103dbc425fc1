"""A tiny task implementing the training-task protocol (docs/dev/CONTRACTS.md) in both frameworks,
for the engine tests: conv3x3 (with a bias only without BN: a bias before BN gets ~0 gradients,
which AdamW would amplify into noise) (+BN) + ReLU + global mean + linear head, cross-entropy plus a small
logit penalty as a second loss component, random numpy data from one seeded generator.

``build_ms_task(cfg)`` / ``build_pt_task(cfg)`` read ``cfg.toy`` (see ``TOY_DEFAULTS``).
"""
import numpy as np

from common.config import Config

TOY_DEFAULTS = {"batch": 8, "steps": 3, "bn": True, "groups": "default", "seed": 0, "nan_at": -1, "size": 6}
N_CLASSES = 3


def toy_config(train=None, optim=None, schedule=None, ema=None, **toy):
    """A ``Config`` with the engine sections (common/train_options.py) and ``toy`` (task keys)."""
    return Config(train=Config(train or {}), optim=Config(optim or {}), schedule=Config(schedule or {}),
                  ema=Config(ema or {}), toy=Config({**TOY_DEFAULTS, **toy}), family="engine_toy")


def write_toy_yaml(path, **sections):
    """A root config file (every engine key declared with its default, plus ``toy``) for the
    scripts; ``sections`` (e.g. ``train={'epochs': 2}``, ``toy={'bn': False}``) override values."""
    import yaml

    from common.train_options import engine_defaults
    tree = engine_defaults()
    tree["toy"] = dict(TOY_DEFAULTS)
    for section, values in sections.items():
        tree[section].update(values)
    tree = {"family": "engine_toy", **tree}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(tree, f, sort_keys=False)
    return path


class _ToyData:
    """Batches ``(x float32 [B,3,S,S], y int32 [B], w float32 [B])`` drawn from ``self.rng``; ``w``
    weights the logit penalty per sample: ones, but NaN in batch ``nan_at`` (global batch index)
    so that the loss becomes NaN (a NaN image would not do: MindSpore's ReLU maps NaN to 0)."""

    loss_names = ("ce", "penalty")

    def __init__(self, cfg):
        t = cfg.toy
        self.batch, self.steps, self.size = int(t.batch), int(t.steps), int(t.size)
        self.nan_at = int(t.nan_at)
        self.rng = np.random.default_rng(int(t.seed))
        eval_rng = np.random.default_rng(1000 + int(t.seed))
        self.eval_x = eval_rng.standard_normal((16, 3, self.size, self.size)).astype(np.float32)
        self.eval_y = (self.eval_x.mean(axis=(2, 3)).argmax(1)).astype(np.int32)
        self.epochs_seen = []

    def steps_per_epoch(self):
        return self.steps

    def set_epoch(self, epoch):
        self.epochs_seen.append(epoch)

    def train_batches(self, epoch):
        for i in range(self.steps):
            x = self.rng.standard_normal((self.batch, 3, self.size, self.size)).astype(np.float32)
            y = (x.mean(axis=(2, 3)).argmax(1)).astype(np.int32)
            w = np.full(self.batch, np.nan if epoch * self.steps + i == self.nan_at else 1.0, np.float32)
            yield x, y, w


def initial_state(bn, seed):
    """PyTorch-named initial weights (and BN statistics) drawn from numpy, loaded by both toys so
    every process and framework starts from the same point."""
    rng = np.random.default_rng(500 + seed)
    state = {"conv.weight": rng.normal(0, 0.3, (4, 3, 3, 3)), "fc.weight": rng.normal(0, 0.5, (N_CLASSES, 4)),
             "fc.bias": rng.normal(0, 0.1, N_CLASSES)}
    if not bn:
        state["conv.bias"] = rng.normal(0, 0.1, 4)
    else:
        state.update({"bn.weight": rng.uniform(0.5, 1.5, 4), "bn.bias": rng.normal(0, 0.1, 4),
                      "bn.running_mean": rng.uniform(-0.1, 0.1, 4), "bn.running_var": rng.uniform(0.5, 1.5, 4)})
    return {k: v.astype(np.float32) for k, v in state.items()}


def toy_groups(named_params, weight_decay, is_norm):
    """YOLOv6-style groups from ``(name, param)`` pairs: norm weights (no decay), other weights
    (decay), biases (no decay, warm-up from 0.05)."""
    bn, weights, biases = [], [], []
    for name, p in named_params:
        if name.endswith("bias") or name.endswith("beta"):
            biases.append(p)
        elif is_norm(name):
            bn.append(p)
        else:
            weights.append(p)
    return [{"name": "bn", "params": bn, "weight_decay": 0.0},
            {"name": "weights", "params": weights, "weight_decay": weight_decay},
            {"name": "bias", "params": biases, "weight_decay": 0.0, "warmup_start_lr": 0.05}]


def _accuracy(logits, y):
    return float((logits.argmax(1) == y).mean())


def build_ms_task(cfg):
    import mindspore as ms
    from mindspore import nn, ops

    from ms_models.engine import default_param_groups

    class ToyNet(nn.Cell):
        def __init__(self, bn):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1, has_bias=not bn)
            self.bn = nn.BatchNorm2d(4, momentum=0.9, eps=1e-5) if bn else nn.Identity()
            self.fc = nn.Dense(4, N_CLASSES)

        def construct(self, x):
            x = ops.relu(self.bn(self.conv(x)))
            return self.fc(x.mean(axis=(2, 3)))

    class MsToyTask(_ToyData):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.model = ToyNet(bool(cfg.toy.bn))
            params = {p.name: p for p in self.model.get_parameters()}
            state = {PT2MS_NAMES.get(k, k): v for k, v in initial_state(bool(cfg.toy.bn), int(cfg.toy.seed)).items()}
            assert set(state) == set(params), (sorted(state), sorted(params))
            for k, v in state.items():
                ops.assign(params[k], ms.Tensor(v))
            self.kind = cfg.toy.groups
            self.weight_decay = float(cfg.optim.get("weight_decay", 5e-4))

        def forward_loss(self, model, x, y, w):
            out = model(x)
            ce = ops.cross_entropy(out, y)
            penalty = 0.1 * (out * out * w.reshape(-1, 1)).mean()
            return ce + penalty, (ce, penalty)

        def param_groups(self, model):
            if self.kind == "default":
                return default_param_groups(model, self.weight_decay)
            return toy_groups([(p.name, p) for p in model.trainable_params()], self.weight_decay,
                              lambda n: n.startswith("bn."))

        def evaluate(self, model, run_dir):
            logits = model(ms.Tensor(self.eval_x)).asnumpy()
            return {"primary": "acc", "acc": _accuracy(logits, self.eval_y),
                    "logit_sum": float(logits.sum())}

    return MsToyTask(cfg)


def build_pt_task(cfg):
    import torch
    from torch import nn

    from pt_reference.engine import default_param_groups

    class ToyNet(nn.Module):
        def __init__(self, bn):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=not bn)
            self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
            self.fc = nn.Linear(4, N_CLASSES)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            return self.fc(x.mean(dim=(2, 3)))

    class PtToyTask(_ToyData):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.model = ToyNet(bool(cfg.toy.bn))
            state = {k: torch.from_numpy(v) for k, v in initial_state(bool(cfg.toy.bn), int(cfg.toy.seed)).items()}
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
            self.kind = cfg.toy.groups
            self.weight_decay = float(cfg.optim.get("weight_decay", 5e-4))

        def forward_loss(self, model, x, y, w):
            out = model(x)
            ce = nn.functional.cross_entropy(out, y.long())
            penalty = 0.1 * (out * out * w.reshape(-1, 1)).mean()
            return ce + penalty, (ce, penalty)

        def param_groups(self, model):
            if self.kind == "default":
                return default_param_groups(model, self.weight_decay)
            return toy_groups(list(model.named_parameters()), self.weight_decay,
                              lambda n: n.startswith("bn."))

        def evaluate(self, model, run_dir):
            with torch.no_grad():
                logits = model(torch.from_numpy(self.eval_x)).numpy()
            return {"primary": "acc", "acc": _accuracy(logits, self.eval_y),
                    "logit_sum": float(logits.sum())}

    return PtToyTask(cfg)


PT2MS_NAMES = {"bn.weight": "bn.gamma", "bn.bias": "bn.beta", "bn.running_mean": "bn.moving_mean",
               "bn.running_var": "bn.moving_variance"}


def rel_diff(a, b):
    """max |a - b| / max(max |b|, 1e-12)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def ms_state(model):
    """``{name: ndarray}`` of a MindSpore toy, renamed to the PyTorch names."""
    back = {v: k for k, v in PT2MS_NAMES.items()}
    return {back.get(p.name, p.name): p.asnumpy() for p in model.get_parameters()}


def pt_state(model):
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def _dump_at_exit(framework, task):
    """Register an atexit hook writing this rank's final weights to ``$ENGINE_TOY_DUMP/<fw>_rank<r>.npz``
    (data-parallel tests compare the ranks; only rank 0 writes checkpoints), with the batch sizes
    the train loop's ``shard_batch`` handed to this rank under ``local_batch``."""
    import atexit
    import os

    import common.train_loop as train_loop
    folder = os.environ["ENGINE_TOY_DUMP"]
    seen = []
    shard_batch = train_loop.shard_batch

    def recording_shard_batch(batch, rank, world):
        out = shard_batch(batch, rank, world)
        seen.append(int(np.shape(out[0])[0]))
        return out

    train_loop.shard_batch = recording_shard_batch

    def dump():
        if framework == "ms":
            from ms_models.engine import world_info
            rank, state = world_info()[0], ms_state(task.model)
        else:
            from pt_reference.engine import world_info
            rank, state = world_info()[0], pt_state(task.model)
        np.savez(os.path.join(folder, f"{framework}_rank{rank}.npz"), local_batch=np.array(seen), **state)

    atexit.register(dump)
    return task


def build_ms_task_dumping(cfg):
    return _dump_at_exit("ms", build_ms_task(cfg))


def build_pt_task_dumping(cfg):
    return _dump_at_exit("pt", build_pt_task(cfg))
