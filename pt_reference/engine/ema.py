"""Exponential moving average of all floating state of a model (parameters and BN statistics),
as YOLOv6's ModelEMA: ``ema = d * ema + (1 - d) * model`` with ``d`` given per update."""
import contextlib

import torch


class EMA:
    """Shadow copies of every floating entry of ``model.state_dict()``."""

    def __init__(self, model):
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, model, decay):
        state = model.state_dict()
        for k, item in self.shadow.items():
            item *= decay
            item += (1.0 - decay) * state[k].detach()

    @contextlib.contextmanager
    def swapped(self, model):
        """Temporarily load the EMA values into ``model``."""
        state = model.state_dict()
        live = {k: state[k].detach().clone() for k in self.shadow}
        with torch.no_grad():
            for k, v in self.shadow.items():
                state[k].copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in live.items():
                    state[k].copy_(v)
