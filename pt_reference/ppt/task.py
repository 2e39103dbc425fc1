"""PPT training/evaluation task (PyTorch twin of ``ms_models.ppt.task``)."""
import torch

from common.weights import read_weights
from pt_reference.classification.task import ClassificationTask, model_kwargs
from pt_reference.registry import create_model

from .macs import ppt_macs
from .model import PPT_KEYS

_HEADS = ("head.weight", "head.bias", "head_dist.weight", "head_dist.bias")


def ppt_kwargs(cfg):
    """Builder keyword arguments from ``cfg.ppt`` (``policy_impl`` is PyTorch-only)."""
    return {k: cfg.ppt[k] for k in PPT_KEYS}


def load_pretrained(model, path):
    """Load a timm/DeiT checkpoint; classifier tensors of another shape are skipped (returned)."""
    state = {k: torch.from_numpy(v) for k, v in read_weights(path).items()}
    own = model.state_dict()
    skipped = [k for k in _HEADS if k in state and k in own and state[k].shape != own[k].shape]
    for k in skipped:
        state[k] = own[k]
    model.load_state_dict(state, strict=True)
    return skipped


def model_macs(model):
    """Analytic MACs of one image (all compression blocks pruning) of a patched timm model."""
    blk = model.blocks[0]
    c = model.embed_dim
    p = model.num_prefix_tokens
    return ppt_macs(c, len(model.blocks), blk.attn.num_heads, mlp_ratio=blk.mlp.fc1.out_features / c,
                    img_size=model.patch_embed.img_size[0], patch_size=model.patch_embed.patch_size[0],
                    num_classes=model.num_classes, num_prefix=p, r=model.ppt_r, pp_loc_list=model.ppt_pp_loc_list)["total"]


class PPTTask(ClassificationTask):
    """Classification task whose model is a timm ViT/DeiT patched with PPT."""

    def __init__(self, cfg):
        self.cfg = cfg
        from common.data.classification import ClassificationData
        self.data = ClassificationData(cfg)
        self.num_classes = self.data.num_classes
        self.model = create_model(cfg.model.name, **model_kwargs(cfg, self.num_classes), **ppt_kwargs(cfg))
        if cfg.model.pretrained:
            skipped = load_pretrained(self.model, cfg.model.pretrained)
            print(f"[ppt] loaded {cfg.model.pretrained}" + (f" (kept the new classifier: {skipped})" if skipped else ""))

    @torch.no_grad()
    def evaluate(self, model, run_dir=None):
        """Top-1/top-5 (percent) and the analytic GMACs per image."""
        metrics = super().evaluate(model, run_dir)
        metrics["gmacs"] = model_macs(model) / 1e9
        return metrics


def build_task(cfg):
    return PPTTask(cfg)
