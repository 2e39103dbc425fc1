"""MindSpore training engine: optimizers with torch semantics, EMA, the compiled train step,
checkpoints, device choice and the ``Trainer``."""
from .checkpoint import load_state, read_eval_weights, save_state
from .device import check_device, init_distributed, select_device, setup_device, world_info
from .ema import EMA
from .optim import SGD, AdamW, build_optimizer
from .param_groups import check_param_groups, default_param_groups
from .train_step import DynamicLossScale, TrainStep, clip_by_global_norm, global_norm
from .trainer import Trainer, graph_mode

__all__ = ["AdamW", "DynamicLossScale", "EMA", "SGD", "TrainStep", "Trainer", "build_optimizer",
           "check_param_groups", "clip_by_global_norm", "default_param_groups", "global_norm", "graph_mode",
           "init_distributed", "load_state", "read_eval_weights", "save_state", "select_device", "setup_device",
           "check_device", "world_info"]
