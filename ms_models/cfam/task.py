"""CFAM training task (MindSpore), the protocol of docs/dev/CONTRACTS.md.

Data, tokenisation, MLM masks and the evaluation protocol come from
``common.data.person_retrieval.RetrievalData`` (identical numpy batches for both frameworks); the
loss is the weighted sum of the enabled CFAM components; ``evaluate`` reports R@1/5/10, mAP, mINP
and mSD (both orderings) of text-to-image retrieval with global features only.
"""
import numpy as np
import mindspore as ms

from common.cfam_config import loss_weights, make_groups, model_kwargs
from common.data.person_retrieval import RetrievalData
from common.weights import read_weights
from common.weights.openai_clip import prepare_clip_state
from ms_models.registry import create_model
from ms_models.utils.weights import load_pt_state_into


def load_clip_weights(model, path, cfg):
    """OpenAI CLIP weights (PyTorch names) into ``model.base_model``, tables resized, strict."""
    grid = tuple(s // cfg.model.vision_patch_size for s in cfg.data.img_size)
    # MindSpore parameter names are global: the sub-network's names keep the 'base_model.' prefix
    state = prepare_clip_state(read_weights(path), prefix="base_model.", grid_hw=grid,
                               context_length=cfg.model.text_length)
    load_pt_state_into(model.base_model, state)


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
        """``(loss, weighted components)``; traceable by GRAPH mode (static shapes)."""
        comps = model(images, caption_ids, pids, mlm_ids, mlm_labels)
        weighted = tuple(c * w for c, w in zip(comps, self.weights.values()))
        loss = weighted[0]
        for c in weighted[1:]:
            loss = loss + c
        return loss, weighted

    def param_groups(self, model):
        return make_groups([(p.name, p) for p in model.trainable_params()], self.cfg)

    def evaluate(self, model, run_dir=None):
        """Text-to-image retrieval metrics of ``model`` (global features), see ``evaluate_with``."""
        was_training = model.training
        model.set_train(False)
        try:
            return self.evaluate_with({"image": lambda x: model.encode_image(ms.Tensor(x)).asnumpy(),
                                       "text": lambda t: model.encode_text(ms.Tensor(t)).asnumpy()}, run_dir)
        finally:
            model.set_train(was_training)

    def evaluate_with(self, predict, run_dir=None):
        """R@1/5/10, mAP, mINP, mSD (and per caption kind) of any ``predict = {"image": f, "text": g}``:
        ``f`` numpy (n, 3, H, W) float32 CLIP-normalised images -> (n, D) features, ``g`` int32 (n, L)
        token ids (``model.text_length``) -> (n, D); tokenisation, cosine similarity and the metrics
        are ``RetrievalData.evaluate``'s. ``ascend/infer.py`` passes the exported towers here."""
        if not isinstance(predict, dict) or set(predict) != {"image", "text"}:
            got = sorted(predict) if isinstance(predict, dict) else type(predict).__name__
            raise ValueError(f"CFAM evaluate_with: predict must be {{'image': f, 'text': g}} (the two exported "
                             f"towers), got {got}")
        res = self.data.evaluate(lambda x: np.asarray(predict["image"](x), np.float32),
                                 lambda t: np.asarray(predict["text"](t), np.float32), self.cfg.eval.msd_order)
        return {**res, "primary": "R1"}

def build_task(cfg):
    return CFAMTask(cfg)
