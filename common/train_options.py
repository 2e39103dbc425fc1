"""The config keys the training engines read (sections ``train``, ``optim``, ``schedule``, ``ema``),
with their defaults.

Family ``base.yaml`` files declare these keys (``ENGINE_DEFAULTS_YAML`` is the block to paste);
a key missing from a config falls back to the default here, so a toy config in a test may set only
what it changes. Other keys of these sections are left to the family task.
"""
from dataclasses import dataclass, field, fields

import yaml

ENGINE_DEFAULTS_YAML = """\
train:
  epochs: 1                 # passes over task.train_batches(epoch)
  max_steps: 0              # stop after this many optimizer steps in all (0: no limit); the schedule still spans all epochs
  seed: 0                   # framework seed (weight init, framework RNG); tasks may also seed their data with it
  grad_clip: 0.0            # max global gradient norm; 0: off
  amp: auto                 # auto (O2 on Ascend, O0 elsewhere) | O0 | O1 | O2 | O3
  loss_scale: auto          # auto (dynamic when amp is not O0) | none | dynamic
  loss_scale_init: 65536.0  # initial dynamic loss scale
  loss_scale_window: 2000   # finite steps before the loss scale doubles
  log_interval: 20          # iterations between log-file lines (metrics.jsonl gets every step)
  eval_interval: 0          # epochs between evaluations during training (0: only the final one)
  save_interval: 1          # epochs between last.ckpt writes (it is always written at the end)
  save_interval_steps: 0    # also write last.ckpt every N steps (0: off)
  metric_mode: max          # max | min: which direction of the primary metric is better (best.ckpt)
  graph_mode: true          # MindSpore: compiled train step (GRAPH mode); false: PyNative for debugging
  output_dir: null          # runs root of this family; null: runs/<family>
  resume: null              # checkpoint path, 'auto' (latest run of this config) or null

optim:
  name: sgd                 # sgd | adamw (torch semantics)
  lr: 0.01                  # base lr; a task's param group may scale it with 'lr_scale'
  momentum: 0.937           # sgd: momentum after warm-up
  nesterov: true            # sgd
  weight_decay: 0.0005      # read by tasks when they build param groups; each group carries its own value
  betas: [0.9, 0.999]       # adamw
  eps: 1.0e-8               # adamw

schedule:
  name: cosine              # cosine | linear | step | constant
  per_iter: false           # cosine/linear evaluated per iteration (true) or per epoch (false, YOLOv6)
  lrf: null                 # final lr factor of cosine/linear; null: min_lr / optim.lr
  min_lr: 0.0               # final lr of cosine/linear when lrf is null
  milestones: []            # step: epochs where the lr is multiplied by gamma
  gamma: 0.1
  warmup_epochs: 0.0        # warm-up iterations = max(round(warmup_epochs * steps_per_epoch), min_warmup_iters)
  min_warmup_iters: 0
  warmup_lr: 0.0            # lr at iteration 0 for param groups without their own 'warmup_start_lr'
  warmup_momentum: null     # sgd momentum at iteration 0 of the warm-up; null: no momentum warm-up

ema:
  enabled: true             # EMA of all floating state (params and BN statistics); evaluated and saved
  decay: 0.9999
  tau: 2000.0               # decay * (1 - exp(-updates / tau)) as YOLOv6; 0: constant decay
"""

# field name -> (section, key); the defaults come from ENGINE_DEFAULTS_YAML
_KEYS = {
    "epochs": ("train", "epochs"), "max_steps": ("train", "max_steps"), "seed": ("train", "seed"),
    "grad_clip": ("train", "grad_clip"), "amp": ("train", "amp"), "loss_scale": ("train", "loss_scale"),
    "loss_scale_init": ("train", "loss_scale_init"), "loss_scale_window": ("train", "loss_scale_window"),
    "log_interval": ("train", "log_interval"), "eval_interval": ("train", "eval_interval"),
    "save_interval": ("train", "save_interval"), "save_interval_steps": ("train", "save_interval_steps"),
    "metric_mode": ("train", "metric_mode"), "graph_mode": ("train", "graph_mode"),
    "output_dir": ("train", "output_dir"), "resume": ("train", "resume"),
    "optimizer": ("optim", "name"), "lr": ("optim", "lr"), "momentum": ("optim", "momentum"),
    "nesterov": ("optim", "nesterov"), "weight_decay": ("optim", "weight_decay"), "betas": ("optim", "betas"),
    "eps": ("optim", "eps"),
    "scheduler": ("schedule", "name"), "per_iter": ("schedule", "per_iter"), "lrf": ("schedule", "lrf"),
    "min_lr": ("schedule", "min_lr"), "milestones": ("schedule", "milestones"), "gamma": ("schedule", "gamma"),
    "warmup_epochs": ("schedule", "warmup_epochs"), "min_warmup_iters": ("schedule", "min_warmup_iters"),
    "warmup_lr": ("schedule", "warmup_lr"), "warmup_momentum": ("schedule", "warmup_momentum"),
    "ema": ("ema", "enabled"), "ema_decay": ("ema", "decay"), "ema_tau": ("ema", "tau"),
}

_CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "scheduler": ("cosine", "linear", "step", "constant"),
    "amp": ("auto", "O0", "O1", "O2", "O3"),
    "loss_scale": ("auto", "none", "dynamic"),
    "metric_mode": ("max", "min"),
}


@dataclass
class TrainOptions:
    """Typed, flat view of the engine keys (see ``ENGINE_DEFAULTS_YAML`` for meaning and defaults)."""
    epochs: int = 1
    max_steps: int = 0
    seed: int = 0
    grad_clip: float = 0.0
    amp: str = "auto"
    loss_scale: str = "auto"
    loss_scale_init: float = 65536.0
    loss_scale_window: int = 2000
    log_interval: int = 20
    eval_interval: int = 0
    save_interval: int = 1
    save_interval_steps: int = 0
    metric_mode: str = "max"
    graph_mode: bool = True
    output_dir: object = None
    resume: object = None
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.937
    nesterov: bool = True
    weight_decay: float = 0.0005
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: str = "cosine"
    per_iter: bool = False
    lrf: object = None
    min_lr: float = 0.0
    milestones: list = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_warmup_iters: int = 0
    warmup_lr: float = 0.0
    warmup_momentum: object = None
    ema: bool = True
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0

    @classmethod
    def from_config(cls, cfg):
        """Read the engine keys from ``cfg`` (a nested mapping); absent keys take the defaults."""
        defaults = cls()
        kw = {}
        for f in fields(cls):
            section, key = _KEYS[f.name]
            node = cfg.get(section) if hasattr(cfg, "get") else None
            if not isinstance(node, dict) or key not in node:
                continue
            kw[f.name] = _coerce(f"{section}.{key}", getattr(defaults, f.name), node[key])
        opts = cls(**kw)
        for name, choices in _CHOICES.items():
            if getattr(opts, name) not in choices:
                section, key = _KEYS[name]
                raise ValueError(f"config key '{section}.{key}' = {getattr(opts, name)!r}; choices: {', '.join(choices)}")
        if len(opts.betas) != 2:
            raise ValueError(f"config key 'optim.betas' needs two values, got {opts.betas!r}")
        return opts

    def final_lr_factor(self):
        """End factor of cosine/linear: ``lrf``, or ``min_lr / lr`` when ``lrf`` is null."""
        return float(self.lrf) if self.lrf is not None else float(self.min_lr) / float(self.lr)

    def resolved_amp(self, device):
        """``(amp_level, dynamic_loss_scale)`` for ``device`` ('Ascend', 'GPU', 'CPU')."""
        level = self.amp if self.amp != "auto" else ("O2" if device == "Ascend" else "O0")
        if self.loss_scale == "auto":
            return level, level != "O0"
        return level, self.loss_scale == "dynamic"


def _coerce(key, default, value):
    if value is None or default is None or isinstance(default, str):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"config key '{key}' expects true/false, got {value!r}")
        return value
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"config key '{key}' expects an integer, got {value!r}")
        return int(value)
    return list(value)


def engine_defaults():
    """``ENGINE_DEFAULTS_YAML`` parsed into a nested dict."""
    return yaml.safe_load(ENGINE_DEFAULTS_YAML)
