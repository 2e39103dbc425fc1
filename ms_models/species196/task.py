"""Species196 task for the MindSpore engine (docs/dev/CONTRACTS.md), one class for every track.

The data, batches and evaluation are framework-free (``common.data.species196_tracks``); this
module adds the models (the foundation's classifiers, ``species196_cnn``, the MAE ViT, the ViT
classifier with an MAE encoder), the traced losses and the numpy forward passes used by evaluation.
The classifier tracks evaluate through ``evaluate_with(predict)``, which also scores an exported
classifier (``ms_models/species196/deploy.py``, ``ascend/infer.py``).
"""
import math

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from common.data.species196_tracks import (CLASSIFIER_TRACKS, Species196TaskBase, encoder_kwargs,
                                           mae_model_kwargs, resolve_pretrained)
from ms_models.classification.task import is_no_decay, model_kwargs, soft_target_cross_entropy
from ms_models.registry import create_model

from .fixmatch import fixmatch_loss
from .vit import linear_probe_head


class ZeroShotState(nn.Cell):
    """The zero-shot track trains nothing; the engine still checkpoints a model: this one holds the
    scorer's ``logit_scale`` (log of the CLIP temperature) only."""

    def __init__(self, logit_scale=100.0):
        super().__init__()
        self.logit_scale = Parameter(Tensor(np.float32(math.log(logit_scale))), name="logit_scale")

    def construct(self):
        return ops.exp(self.logit_scale)


class NumpyPredict:
    """A numpy ``predict(images) -> logits`` standing in for the model in the shared evaluation."""

    def __init__(self, fn):
        self.fn = fn


class NoTrainingStep:
    """Train step of the zero-shot track: no update; reports a zero loss."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, lrs, moms, wds, *batch):
        return Tensor(np.float32(0.0)), Tensor(np.zeros(1, np.float32))


def load_encoder(model, path):
    """Copy the encoder weights of an MAE checkpoint (MindSpore engine ``.ckpt``: EMA weights when
    present) into ``model``; every non-head parameter of ``model`` must be found."""
    from ms_models.engine.checkpoint import read_eval_weights
    from ms_models.utils.weights import load_numpy_state
    arrays = read_eval_weights(path)
    own = model.parameters_dict()
    need = [k for k in own if not k.startswith("head.")]
    missing = [k for k in need if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not an MAE encoder checkpoint for this ViT: missing {missing[:6]} "
                         f"({len(missing)} in all); check mae.model / mae.kwargs / data.img_size")
    load_numpy_state(model, {k: arrays[k] for k in need}, strict=False)
    print(f"[species196] loaded {len(need)} encoder tensors from {path}")


def build_classifier(cfg, track, num_classes, encoder=None):
    """The classifier of a classifier track (also the deployed network, ``deploy.py``):
    ``model.name`` for supervised / fixmatch; for linear_probe / finetune the ViT shaped like the MAE
    encoder (``mae.*``, ``data.img_size``) with the encoder weights of the checkpoint ``encoder``
    (None: as initialised), and for linear_probe MAE's BatchNorm + linear head with the rest frozen."""
    if track in ("supervised", "fixmatch"):
        return create_model(cfg.model.name, **model_kwargs(cfg, num_classes))
    if track not in ("linear_probe", "finetune"):
        raise ValueError(f"track {track!r} has no classifier; classifier tracks: {CLASSIFIER_TRACKS}")
    enc = encoder_kwargs(cfg)
    dpr = float(cfg.model.drop_path_rate) if track == "finetune" else 0.0
    model = create_model("species196_vit", **enc, num_classes=num_classes, drop_path_rate=dpr)
    if encoder is not None:
        load_encoder(model, encoder)
    if track == "linear_probe":
        model.head = linear_probe_head(enc["embed_dim"], num_classes)
        for p in model.get_parameters():
            if not p.name.startswith("head."):
                p.requires_grad = False
    return model


class Species196Task(Species196TaskBase):
    framework = "ms"
    ckpt_suffix = ".ckpt"

    def __init__(self, cfg):
        super().__init__(cfg)
        f = cfg.fixmatch
        self.fm = (float(f.threshold), float(f.lambda_u), float(f.temperature))
        if self.track == "zero_shot":
            self.build_train_step = NoTrainingStep

    def build_model(self):
        cfg, k, t = self.cfg, self.num_classes, self.track
        if t in ("supervised", "fixmatch"):
            return build_classifier(cfg, t, k)
        if t == "mae_pretrain":
            return create_model(cfg.mae.model, **mae_model_kwargs(cfg))
        if t in ("linear_probe", "finetune"):
            path = resolve_pretrained(cfg, self.ckpt_suffix)
            if path is None:
                print("[species196] probe.pretrained is null: the ViT encoder starts from random weights")
            return build_classifier(cfg, t, k, encoder=path)
        return ZeroShotState(float(cfg.zero_shot.logit_scale))

    def forward_loss(self, model, *batch):
        """Track loss and components (traceable by ``ms.jit``: shapes are static)."""
        if self.track == "fixmatch":
            x, y, xw, xs = batch
            b, u = x.shape[0], xw.shape[0]
            logits = model(ops.concat([x, xw, xs], axis=0))
            total, sup, unsup, rate = fixmatch_loss(logits[:b], y, logits[b:b + u], logits[b + u:], *self.fm)
            return total, (sup, unsup, rate)
        if self.track == "mae_pretrain":
            loss = model(*batch)
            return loss, (loss,)
        images, targets = batch
        logits = model(images)
        loss = soft_target_cross_entropy(logits, targets) if targets.ndim == 2 else ops.cross_entropy(logits, targets)
        return loss, (loss,)

    def param_groups(self, model):
        """decay / no_decay over the trainable parameters (linear probing: the head only)."""
        decay, no_decay = [], []
        for p in model.trainable_params():
            (no_decay if is_no_decay(p.name, p) else decay).append(p)
        groups = [{"name": "decay", "params": decay, "weight_decay": float(self.cfg.optim.weight_decay)},
                  {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    # ---- numpy forward passes (evaluation) ---------------------------------------------------
    def logits_np(self, model, images):
        out = model.fn(images) if isinstance(model, NumpyPredict) else model(Tensor(images)).asnumpy()
        out = np.asarray(out).astype(np.float32)
        if out.shape != (images.shape[0], self.num_classes):
            raise ValueError(f"species196 evaluation: the classifier returned logits of shape {out.shape}, expected "
                             f"({images.shape[0]}, {self.num_classes}) (batch, classes of the label map)")
        return out

    def features_np(self, model, images):
        return model.encode(Tensor(images)).asnumpy()

    def mae_loss_np(self, model, images, ids_keep, ids_restore, mask):
        return float(model(Tensor(images), Tensor(ids_keep), Tensor(ids_restore), Tensor(mask)).asnumpy())

    def image_text_model(self):
        from .zero_shot import RegistryImageTextModel
        z = self.cfg.zero_shot
        if not z.clip_model:
            raise ValueError("zero_shot.model is 'clip' but zero_shot.clip_model names no registered model")
        return RegistryImageTextModel(z.clip_model, z.clip_kwargs, z.tokenizer, z.context_length,
                                      weights=z.clip_weights)

    def evaluate(self, model, run_dir=None):
        """Track metrics of ``model`` in eval mode; classifier tracks go through ``evaluate_with``."""
        was_training = model.training
        model.set_train(False)
        try:
            if self.track in CLASSIFIER_TRACKS:
                return self.evaluate_with(lambda images: model(Tensor(images)).asnumpy(), run_dir)
            return super().evaluate(model, run_dir)
        finally:
            model.set_train(was_training)

    def evaluate_with(self, predict, run_dir=None):
        """Species196 metrics (top-1/top-5, macro, per taxonomic level and supercategory; report,
        label map and confusion PNG in ``run_dir``) of any classifier ``predict`` (numpy (B, 3, S, S)
        eval crops -> logits (B, K)) on the val split; ``ascend/infer.py`` passes an exported graph."""
        if self.track not in CLASSIFIER_TRACKS:
            raise ValueError(f"species196 evaluate_with: track {self.track!r} is not evaluated by a classifier "
                             f"(classifier tracks: {', '.join(CLASSIFIER_TRACKS)})")
        return super().evaluate(NumpyPredict(predict), run_dir)


def build_task(cfg):
    return Species196Task(cfg)
