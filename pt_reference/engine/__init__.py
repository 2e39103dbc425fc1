"""PyTorch reference training engine (the mirror of ms_models.engine): torch.optim over the task's
groups, EMA, the train step, checkpoints, device choice and the ``Trainer``."""
from .checkpoint import load_state, read_eval_weights, save_state
from .device import init_distributed, select_device, world_info
from .ema import EMA
from .optim import build_optimizer, set_hyperparams
from .param_groups import check_param_groups, default_param_groups
from .train_step import TrainStep
from .trainer import Trainer

__all__ = ["EMA", "TrainStep", "Trainer", "build_optimizer", "check_param_groups", "default_param_groups",
           "init_distributed", "load_state", "read_eval_weights", "save_state", "select_device",
           "set_hyperparams", "world_info"]
