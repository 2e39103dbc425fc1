"""Registry entries that build the reference backbones with ``timm.create_model`` (never downloads).

Names match ``ms_models.backbones``; kwargs (num_classes, drop_path_rate, img_size, in_chans) go to timm.
"""
import timm

from ..registry import register_model

NAMES = ("resnet18", "resnet34", "resnet50", "resnet101",
         "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
         "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
         "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224")
# OFA-KD backbones (ms_models/backbones/{swin,mlp_mixer,resmlp,mobilenetv2,convnext}.py)
NAMES += ("swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "swin_base_patch4_window7_224",
          "mixer_s16_224", "mixer_b16_224", "mixer_l16_224", "resmlp_12_224", "resmlp_24_224", "mobilenetv2_100",
          "convnext_tiny", "convnext_small", "convnext_base")


def _builder(name):
    def build(**kwargs):
        return timm.create_model(name, pretrained=False, **kwargs)

    build.__name__ = name
    build.__doc__ = f"timm ``{name}`` with random weights."
    return build


for _name in NAMES:
    register_model(_builder(_name))


# OFA-KD's small Swin students (not in timm): timm's Swin with their shapes.
_SWIN_STUDENTS = {"swin_nano_patch4_window7_224": dict(embed_dim=64, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16)),
                  "swin_pico_patch4_window7_224": dict(embed_dim=48, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))}


def _swin_student_builder(name):
    def build(**kwargs):
        return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **{**_SWIN_STUDENTS[name], **kwargs})

    build.__name__ = name
    build.__doc__ = f"OFA-KD ``{name}``: timm Swin with random weights."
    return build


for _name in _SWIN_STUDENTS:
    register_model(_swin_student_builder(_name))
