"""IFT task for the MindSpore engine (see docs/dev/CONTRACTS.md, "Training task").

Batches ``(x1, x2, x3 float32 (B, 6, S, S), label float32 (B, 3, S, S))`` come from
``common.data.hdr_task`` (identical numpy batches for both frameworks). The loss is the mu-law
tonemapped L1 (mu = ``loss.mu``); ``evaluate`` runs the tiled test protocol and reports PSNR-mu
(primary), PSNR-l, SSIM-mu and SSIM-l.
"""
import mindspore as ms
import numpy as np

from common.data.hdr_task import HDRTaskData, model_kwargs
from ms_models.registry import create_model

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
        """``(loss, (loss,))``; traceable by GRAPH mode (static shapes)."""
        loss = mu_l1_loss(model(x1, x2, x3), label, self.mu)
        return loss, (loss,)

    def param_groups(self, model):
        return [{"name": "all", "params": list(model.trainable_params()),
                 "weight_decay": float(self.cfg.optim.weight_decay)}]

    def evaluate_with(self, predict, run_dir=None):
        """The tiled test protocol (``eval.tile`` tiles, padding with ``eval.pad_value``, stitching;
        ``common.data.hdr_task.HDRTaskData.evaluate``) around ``predict(x1, x2, x3) -> (B, 3, T, T)``
        (numpy (B, 6, T, T) each; an exported graph or the MindSpore model): PSNR-l, PSNR-mu
        (primary), SSIM-l, SSIM-mu."""
        return self.data.evaluate(predict, run_dir)

    def evaluate(self, model, run_dir=None):
        """``evaluate_with`` around the MindSpore ``model`` in eval mode."""
        was_training = model.training
        model.set_train(False)

        def predict(x1, x2, x3):
            return model(ms.Tensor(x1), ms.Tensor(x2), ms.Tensor(x3)).asnumpy().astype(np.float32)
        try:
            return self.evaluate_with(predict, run_dir)
        finally:
            model.set_train(was_training)


def build_task(cfg):
    return IFTTask(cfg)
