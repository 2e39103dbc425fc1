"""IFT task for the PyTorch engine: the twin of ``ms_models.ift.task``."""
import torch

from common.data.hdr_task import HDRTaskData, model_kwargs
from pt_reference.registry import create_model

from .loss import mu_l1_loss

LOSSES = ("mu_l1",)


class IFTTask:
    """Model, data and loss of one HDR run, built from a config."""

    loss_names = ("mu_l1",)

    def __init__(self, cfg):
        if cfg.loss.name not in LOSSES:
            raise ValueError(f"loss.name must be one of {LOSSES}, got '{cfg.loss.name}'")
        self.cfg = cfg
        self.mu = float(cfg.loss.mu)
        self.data = HDRTaskData(cfg)
        self.model = create_model(cfg.model.name, **model_kwargs(cfg))

    def steps_per_epoch(self):
        return self.data.steps_per_epoch()

    def train_batches(self, epoch):
        return self.data.train_batches(epoch)

    def forward_loss(self, model, x1, x2, x3, label):
        loss = mu_l1_loss(model(x1, x2, x3), label, self.mu)
        return loss, (loss,)

    def param_groups(self, model):
        return [{"name": "all", "params": [p for p in model.parameters() if p.requires_grad],
                 "weight_decay": float(self.cfg.optim.weight_decay)}]

    @torch.no_grad()
    def evaluate(self, model, run_dir=None):
        was_training = model.training
        model.eval()

        def predict(x1, x2, x3):
            return model(torch.from_numpy(x1), torch.from_numpy(x2), torch.from_numpy(x3)).float().numpy()
        try:
            return self.data.evaluate(predict, run_dir)
        finally:
            model.train(was_training)


def build_task(cfg):
    return IFTTask(cfg)
