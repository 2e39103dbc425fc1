"""Species196 task for the PyTorch engine: the twin of ``ms_models.species196.task``."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.data.species196_tracks import (Species196TaskBase, encoder_kwargs, mae_model_kwargs,
                                           resolve_pretrained)
from pt_reference.classification.task import is_no_decay, model_kwargs, soft_target_cross_entropy
from pt_reference.registry import create_model

from .fixmatch import fixmatch_loss
from .vit import linear_probe_head


class ZeroShotState(nn.Module):
    """Holds the scorer's ``logit_scale`` only (the zero-shot track trains nothing)."""

    def __init__(self, logit_scale=100.0):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale), dtype=torch.float32))

    def forward(self):
        return self.logit_scale.exp()


class NoTrainingStep:
    """Train step of the zero-shot track: no update; reports a zero loss."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, lrs, moms, wds, *batch):
        return torch.zeros(()), torch.zeros(1)


def load_encoder(model, path):
    """Copy the encoder weights of a PyTorch engine MAE checkpoint (``.pt``, EMA when present)."""
    from pt_reference.engine.checkpoint import read_eval_weights
    from pt_reference.utils.weights import load_numpy_state
    state = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in read_eval_weights(path).items()}
    need = [k for k in model.state_dict() if not k.startswith("head.")]
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"{path}: not an MAE encoder checkpoint for this ViT: missing {missing[:6]} "
                         f"({len(missing)} in all); check mae.model / mae.kwargs / data.img_size")
    load_numpy_state(model, {k: state[k] for k in need}, strict=False)
    print(f"[species196] loaded {len(need)} encoder tensors from {path}")


class Species196Task(Species196TaskBase):
    framework = "pt"
    ckpt_suffix = ".pt"

    def __init__(self, cfg):
        super().__init__(cfg)
        f = cfg.fixmatch
        self.fm = (float(f.threshold), float(f.lambda_u), float(f.temperature))
        if self.track == "zero_shot":
            self.build_train_step = NoTrainingStep

    def build_model(self):
        cfg, k, t = self.cfg, self.num_classes, self.track
        if t in ("supervised", "fixmatch"):
            return create_model(cfg.model.name, **model_kwargs(cfg, k))
        if t == "mae_pretrain":
            return create_model(cfg.mae.model, **mae_model_kwargs(cfg))
        if t in ("linear_probe", "finetune"):
            enc = encoder_kwargs(cfg)
            dpr = float(cfg.model.drop_path_rate) if t == "finetune" else 0.0
            model = create_model("species196_vit", **enc, num_classes=k, drop_path_rate=dpr)
            path = resolve_pretrained(cfg, self.ckpt_suffix)
            if path is not None:
                load_encoder(model, path)
            else:
                print("[species196] probe.pretrained is null: the ViT encoder starts from random weights")
            if t == "linear_probe":
                model.head = linear_probe_head(enc["embed_dim"], k)
                for name, p in model.named_parameters():
                    if not name.startswith("head."):
                        p.requires_grad_(False)
            return model
        return ZeroShotState(float(cfg.zero_shot.logit_scale))

    def forward_loss(self, model, *batch):
        if self.track == "fixmatch":
            x, y, xw, xs = batch
            b, u = x.shape[0], xw.shape[0]
            logits = model(torch.cat([x, xw, xs], dim=0))
            total, sup, unsup, rate = fixmatch_loss(logits[:b], y, logits[b:b + u], logits[b + u:], *self.fm)
            return total, (sup, unsup, rate)
        if self.track == "mae_pretrain":
            loss = model(*batch)
            return loss, (loss,)
        images, targets = batch
        logits = model(images)
        loss = soft_target_cross_entropy(logits, targets) if targets.ndim == 2 else F.cross_entropy(logits, targets.long())
        return loss, (loss,)

    def param_groups(self, model):
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if is_no_decay(name, p) else decay).append(p)
        groups = [{"name": "decay", "params": decay, "weight_decay": float(self.cfg.optim.weight_decay)},
                  {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    @torch.no_grad()
    def logits_np(self, model, images):
        return model(torch.from_numpy(images)).float().numpy()

    @torch.no_grad()
    def features_np(self, model, images):
        return model.encode(torch.from_numpy(images)).float().numpy()

    @torch.no_grad()
    def mae_loss_np(self, model, images, ids_keep, ids_restore, mask):
        return float(model(*(torch.from_numpy(a) for a in (images, ids_keep, ids_restore, mask))))

    def image_text_model(self):
        raise NotImplementedError("the PyTorch reference has no image-text model adapter; run the zero-shot "
                                  "CLIP scorer with --framework ms (the stub answer model works in both)")

    def evaluate(self, model, run_dir=None):
        was_training = model.training
        model.eval()
        try:
            return super().evaluate(model, run_dir)
        finally:
            model.train(was_training)


def build_task(cfg):
    return Species196Task(cfg)
