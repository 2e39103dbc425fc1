"""ViT classifiers of any shape for Species196 (linear probing / fine-tuning an MAE encoder).

``species196_vit`` is the foundation's ``VisionTransformer`` (timm names) with the shape given as
arguments (twin: timm ``VisionTransformer`` with the same arguments). ``linear_probe_head`` is
MAE's linear-probing head: BatchNorm1d without affine parameters (eps 1e-6) before the linear layer.
"""
from mindspore import nn
from mindspore.common.initializer import TruncatedNormal, initializer

from ms_models.backbones.vit import VisionTransformer
from ms_models.layers import dense
from ms_models.registry import register_model


@register_model
def species196_vit(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                   num_classes=196, drop_path_rate=0.0, in_chans=3):
    """ViT with class-token pooling, shape from the arguments (e.g. an MAE encoder's)."""
    return VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                             drop_path_rate=drop_path_rate)


def linear_probe_head(embed_dim, num_classes):
    """``head.0`` BatchNorm1d(affine=False, eps=1e-6) and ``head.1`` Dense (weights N(0, 0.01) truncated)."""
    fc = dense(embed_dim, num_classes)
    fc.weight.set_data(initializer(TruncatedNormal(0.01), fc.weight.shape, fc.weight.dtype))
    return nn.SequentialCell([nn.BatchNorm1d(embed_dim, eps=1e-6, momentum=0.9, affine=False), fc])
