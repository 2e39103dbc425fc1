"""CFAM training task (PyTorch reference), the twin of ``ms_models.cfam.task``."""
import torch

from common.cfam_config import loss_weights, make_groups, model_kwargs
from common.data.person_retrieval import RetrievalData
from common.weights import read_weights
from common.weights.openai_clip import prepare_clip_state
from pt_reference.registry import create_model
from pt_reference.utils.weights import load_numpy_state


def load_clip_weights(model, path, cfg):
    """OpenAI CLIP weights into ``model.base_model`` with resized position tables, strict."""
    grid = tuple(s // cfg.model.vision_patch_size for s in cfg.data.img_size)
    state = prepare_clip_state(read_weights(path), grid_hw=grid, context_length=cfg.model.text_length)
    load_numpy_state(model.base_model, state, strict=True)


class CFAMTask:
    """Model, data and loss of one CFAM run, built from a ``configs/cfam`` config."""

    def __init__(self, cfg, data=None):
        self.cfg = cfg
        self.data = data or RetrievalData(cfg)
        self.weights = loss_weights(cfg)
        self.loss_names = tuple(self.weights)
        self.model = create_model(cfg.model.name, **model_kwargs(cfg, self.data.num_classes))
        if cfg.model.pretrained:
            load_clip_weights(self.model, cfg.model.pretrained, cfg)

    def steps_per_epoch(self):
        return self.data.steps_per_epoch()

    def train_batches(self, epoch):
        return self.data.train_batches(epoch)

    def forward_loss(self, model, images, caption_ids, pids, mlm_ids, mlm_labels):
        comps = model(images, caption_ids.long(), pids.long(), mlm_ids.long(), mlm_labels.long())
        weighted = tuple(c * w for c, w in zip(comps, self.weights.values()))
        return sum(weighted[1:], weighted[0]), weighted

    def param_groups(self, model):
        return make_groups([(n, p) for n, p in model.named_parameters() if p.requires_grad], self.cfg)

    @torch.no_grad()
    def evaluate(self, model, run_dir=None):
        was_training = model.training
        model.eval()
        try:
            res = self.data.evaluate(lambda x: model.encode_image(torch.from_numpy(x)).float().numpy(),
                                     lambda t: model.encode_text(torch.from_numpy(t).long()).float().numpy(),
                                     self.cfg.eval.msd_order)
        finally:
            model.train(was_training)
        return {**res, "primary": "R1"}


def build_task(cfg):
    return CFAMTask(cfg)
