"""PPT training/evaluation task (MindSpore): DeiT classification with token pruning and pooling.

The classification task (data, soft-target CE loss, top-1/top-5 evaluation) with the model built
from ``model.name`` plus the ``ppt.*`` keys, optionally initialised from ``model.pretrained``
(a DeiT/ViT checkpoint in PyTorch or MindSpore naming; a classifier of another width is skipped,
as in the official fine-tuning). ``evaluate`` adds the analytic GMACs of the model.
"""
from common.weights import convert_state_dict, read_weights
from ms_models.classification.task import ClassificationTask, model_kwargs
from ms_models.registry import create_model
from ms_models.utils.weights import load_numpy_state, target_shapes

from .macs import ppt_macs

PPT_KEYS = ("r", "pp_loc_list", "tau", "var_ddof", "prop_attn", "tau_rescale")


def ppt_kwargs(cfg):
    """Builder keyword arguments from ``cfg.ppt``."""
    return {k: cfg.ppt[k] for k in PPT_KEYS}


def load_pretrained(net, path):
    """Load a ViT/DeiT checkpoint into ``net``; classifier tensors of another shape are skipped.

    Returns the list of skipped keys. Raises ``WeightMismatchError`` naming every other mismatch.
    """
    state = read_weights(path)
    shapes = target_shapes(net)
    skipped = [k for k in ("head.weight", "head.bias", "head_dist.weight", "head_dist.bias")
               if k in state and k in shapes and tuple(state[k].shape) != shapes[k]]
    own = net.parameters_dict()
    state.update({k: own[k].asnumpy() for k in skipped})
    if not set(shapes) <= set(state):
        state = convert_state_dict(state, shapes, "pt2ms")
    load_numpy_state(net, state, strict=True)
    return skipped


def model_macs(net):
    """Analytic MACs of one image (all compression blocks pruning) of a built PPT model."""
    blk = net.blocks[0]
    c = net.embed_dim
    return ppt_macs(c, len(net.blocks), blk.attn.num_heads, mlp_ratio=blk.mlp.fc1.out_channels / c,
                    img_size=net.patch_embed.img_size[0], patch_size=net.patch_embed.patch_size,
                    num_classes=net.num_classes, num_prefix=net.num_prefix_tokens, r=net.r,
                    pp_loc_list=net.pp_loc_list)["total"]


class PPTTask(ClassificationTask):
    """Classification task whose model is a PPT ViT/DeiT."""

    def __init__(self, cfg):
        self.cfg = cfg
        from common.data.classification import ClassificationData
        self.data = ClassificationData(cfg)
        self.num_classes = self.data.num_classes
        self.model = create_model(cfg.model.name, **model_kwargs(cfg, self.num_classes), **ppt_kwargs(cfg))
        if cfg.model.pretrained:
            skipped = load_pretrained(self.model, cfg.model.pretrained)
            print(f"[ppt] loaded {cfg.model.pretrained}" + (f" (kept the new classifier: {skipped})" if skipped else ""))

    def evaluate(self, model, run_dir=None):
        """Top-1/top-5 (percent) and the analytic GMACs per image."""
        metrics = super().evaluate(model, run_dir)
        metrics["gmacs"] = model_macs(model) / 1e9
        return metrics


def build_task(cfg):
    return PPTTask(cfg)
