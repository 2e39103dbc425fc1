"""LightCLIP training task (PyTorch reference), twin of ``ms_models.lightclip.task`` (see there)."""
import torch

from common.data.lightclip_shapes import LightCLIPData
from common.lightclip_ops import LOSS_NAMES, loss_weights, make_groups, model_kwargs, real_word_mask, token_matching
from pt_reference.engine.train_step import TrainStep

from .model import LightCLIP


def compute_matching(model, images, ids, data, threshold):
    """One-hot (B, L, M) matching of the current model (eval mode, no gradient)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            sim = model.token_similarity(images, ids).cpu().numpy()
    finally:
        model.train(was_training)
    return token_matching(sim, real_word_mask(ids.cpu().numpy(), data.sot_id, data.eot_id), threshold)


class MatchingTrainStep:
    """The engine's ``TrainStep`` preceded by the Hungarian matching (fills the last batch slot)."""

    def __init__(self, task, model, optimizer, **kwargs):
        self.task, self.model = task, model
        self.inner = TrainStep(task, model, optimizer, **kwargs)

    def __call__(self, lrs, moms, wds, *batch):
        match = compute_matching(self.model, batch[0], batch[1], self.task.data, self.task.cfg.loss.match_threshold)
        return self.inner(lrs, moms, wds, *batch[:-1], torch.from_numpy(match).to(batch[0].device))


class LightCLIPTask:
    """Model, data and loss of one LightCLIP run, built from a ``configs/lightclip`` config."""

    def __init__(self, cfg, data=None):
        self.cfg = cfg
        self.data = data or LightCLIPData(cfg)
        self.weights = loss_weights(cfg)
        self.loss_names = LOSS_NAMES
        self.model = LightCLIP(**model_kwargs(cfg, self.data.vocab_size))
        if cfg.model.pretrained_image:
            if cfg.model.image_encoder != "efficientnet_lite0":
                raise ValueError("model.pretrained_image is only available for model.image_encoder=efficientnet_lite0")
            from pt_reference.backbones.efficientnet_lite import load_lite0_state
            state = {k: v for k, v in load_lite0_state().items() if not k.startswith("_fc.")}
            self.model.visual.load_state_dict(state, strict=True)
        if self.weights[1] > 0:
            self.build_train_step = MatchingTrainStep

    def steps_per_epoch(self):
        return self.data.steps_per_epoch()

    def train_batches(self, epoch):
        return self.data.train_batches(epoch)

    def forward_loss(self, model, images, ids, alpha, mlm_ids, mlm_labels, match):
        comps = model(images, ids, alpha, mlm_ids, mlm_labels, match)
        weighted = tuple(c * w for c, w in zip(comps, self.weights))
        return weighted[0] + weighted[1] + weighted[2], weighted

    def param_groups(self, model):
        return make_groups([(n, p.ndim, p) for n, p in model.named_parameters() if p.requires_grad], self.cfg)

    def evaluate(self, model, run_dir=None):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                res = self.data.evaluate(lambda x: model.encode_image(torch.from_numpy(x)).numpy(),
                                         lambda t: model.encode_text(torch.from_numpy(t)).numpy())
        finally:
            model.train(was_training)
        return {**res, "primary": "zs_acc_held"}


def build_task(cfg):
    return LightCLIPTask(cfg)
