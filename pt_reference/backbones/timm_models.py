"""Registry entries that build the reference backbones with ``timm.create_model`` (never downloads).

Names match ``ms_models.backbones``; kwargs (num_classes, drop_path_rate, img_size, in_chans) go to timm.
"""
import timm

from ..registry import register_model

NAMES = ("resnet18", "resnet34", "resnet50", "resnet101",
         "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
         "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
         "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224")


def _builder(name):
    def build(**kwargs):
        return timm.create_model(name, pretrained=False, **kwargs)

    build.__name__ = name
    build.__doc__ = f"timm ``{name}`` with random weights."
    return build


for _name in NAMES:
    register_model(_builder(_name))
