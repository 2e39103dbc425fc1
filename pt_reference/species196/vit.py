"""ViT classifiers of any shape (PyTorch twin of ``ms_models.species196.vit``: timm ``VisionTransformer``)."""
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from pt_reference.registry import register_model


@register_model
def species196_vit(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                   num_classes=196, drop_path_rate=0.0, in_chans=3):
    return VisionTransformer(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                             drop_path_rate=drop_path_rate)


def linear_probe_head(embed_dim, num_classes):
    fc = nn.Linear(embed_dim, num_classes)
    nn.init.trunc_normal_(fc.weight, std=0.01)
    nn.init.zeros_(fc.bias)
    return nn.Sequential(nn.BatchNorm1d(embed_dim, affine=False, eps=1e-6), fc)
