"""LightCLIP training task (MindSpore), the protocol of docs/dev/CONTRACTS.md.

Data, alpha(t), MLM masks and the evaluation protocol come from
``common.data.lightclip_shapes.LightCLIPData`` (identical numpy batches in both frameworks). When
the token loss is on, the train step first computes the (B, L, M) word-patch similarities of the
current model in eval mode (no gradient), runs the Hungarian matching on numpy
(``common.lightclip_ops.token_matching``) and feeds the one-hot mask into the compiled step.
"""
import numpy as np
import mindspore as ms
from mindspore import nn

from common.data.lightclip_shapes import LightCLIPData
from common.lightclip_ops import LOSS_NAMES, loss_weights, make_groups, model_kwargs, real_word_mask, token_matching
from ms_models.engine.train_step import TrainStep

from .model import LightCLIP


class _Similarity(nn.Cell):
    def __init__(self, model):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, images, ids):
        return self.model.token_similarity(images, ids)


def compute_matching(model, sim_cell, images, ids, data, threshold):
    """One-hot (B, L, M) matching of the current model (eval mode, no gradient)."""
    was_training = model.training
    model.set_train(False)
    try:
        sim = sim_cell(images, ids).asnumpy()
    finally:
        model.set_train(was_training)
    return token_matching(sim, real_word_mask(ids.asnumpy(), data.sot_id, data.eot_id), threshold)


class MatchingTrainStep:
    """The engine's ``TrainStep`` preceded by the Hungarian matching (fills the last batch slot)."""

    def __init__(self, task, model, optimizer, **kwargs):
        self.task, self.model = task, model
        self.inner = TrainStep(task, model, optimizer, **kwargs)
        self.sim_cell = _Similarity(model)

    def __call__(self, lrs, moms, wds, *batch):
        match = compute_matching(self.model, self.sim_cell, batch[0], batch[1], self.task.data,
                                 self.task.cfg.loss.match_threshold)
        return self.inner(lrs, moms, wds, *batch[:-1], ms.Tensor(match))


class LightCLIPTask:
    """Model, data and loss of one LightCLIP run, built from a ``configs/lightclip`` config."""

    def __init__(self, cfg, data=None):
        self.cfg = cfg
        self.data = data or LightCLIPData(cfg)
        self.weights = loss_weights(cfg)
        self.loss_names = LOSS_NAMES
        self.model = LightCLIP(**model_kwargs(cfg, self.data.vocab_size))
        if cfg.model.pretrained_image:
            self._load_image_weights()
        if self.weights[1] > 0:
            self.build_train_step = MatchingTrainStep

    def _load_image_weights(self):
        if self.cfg.model.image_encoder != "efficientnet_lite0":
            raise ValueError("model.pretrained_image is only available for model.image_encoder=efficientnet_lite0")
        from common.lightclip_ops import lite0_weights_path
        from common.weights import convert_state_dict, read_weights
        from ms_models.utils.weights import load_numpy_state

        state = {k: v for k, v in read_weights(lite0_weights_path()).items() if not k.startswith("_fc.")}
        target = {p.name[len("visual."):]: p.shape for p in self.model.visual.get_parameters()}
        ms_state = convert_state_dict(state, target, "pt2ms")
        load_numpy_state(self.model.visual, {f"visual.{k}": v for k, v in ms_state.items()})

    def steps_per_epoch(self):
        return self.data.steps_per_epoch()

    def train_batches(self, epoch):
        return self.data.train_batches(epoch)

    def forward_loss(self, model, images, ids, alpha, mlm_ids, mlm_labels, match):
        """``(loss, weighted components)``; traceable by GRAPH mode."""
        comps = model(images, ids, alpha, mlm_ids, mlm_labels, match)
        weighted = tuple(c * w for c, w in zip(comps, self.weights))
        return weighted[0] + weighted[1] + weighted[2], weighted

    def param_groups(self, model):
        return make_groups([(p.name, len(p.shape), p) for p in model.trainable_params()], self.cfg)

    def evaluate(self, model, run_dir=None):
        """Zero-shot accuracy and retrieval R@K of ``model`` (global embeddings), see ``evaluate_with``."""
        was_training = model.training
        model.set_train(False)
        try:
            return self.evaluate_with({"image": lambda x: model.encode_image(ms.Tensor(x)).asnumpy(),
                                       "text": lambda t: model.encode_text(ms.Tensor(t)).asnumpy()}, run_dir)
        finally:
            model.set_train(was_training)

    def evaluate_with(self, predict, run_dir=None):
        """Zero-shot accuracy (prompt templates; all / held-out / seen pairs) and i2t/t2i R@1/5/10 of any
        ``predict = {"image": f, "text": g}``: ``f`` numpy (n, 3, H, W) float32 normalised images ->
        (n, D), ``g`` int32 (n, L) token ids (``model.text_length``) -> (n, D); tokenisation, prompt
        averaging, normalisation and the metrics are ``LightCLIPData.evaluate``'s. ``ascend/infer.py``
        passes the exported towers here."""
        if not isinstance(predict, dict) or set(predict) != {"image", "text"}:
            got = sorted(predict) if isinstance(predict, dict) else type(predict).__name__
            raise ValueError(f"LightCLIP evaluate_with: predict must be {{'image': f, 'text': g}} (the two exported "
                             f"towers), got {got}")
        res = self.data.evaluate(lambda x: np.asarray(predict["image"](x), np.float32),
                                 lambda t: np.asarray(predict["text"](t), np.float32))
        return {**res, "primary": "zs_acc_held"}

def build_task(cfg):
    return LightCLIPTask(cfg)
