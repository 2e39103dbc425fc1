"""Student stage taps (MindSpore): one forward giving the logits and the features of stages 1-4.

The tap points follow Hao840/OFAKD ``custom_forward``:
- ResNet: outputs of layer1..layer4, (C, H, W).
- ViT / DeiT / MLP-Mixer / ResMLP: outputs of blocks (1, 3, d-3, d-1) for depth d (1, 3, 9, 11 at
  depth 12; 1, 3, 21, 23 at depth 24), (prefix + L, D) tokens.
- Swin: output of the last block of each stage, (H*W, C) tokens.
- MobileNetV2: outputs of blocks 2, 5 and 12 (ends of block stages 1, 2 and 4) and the head map
  after conv_head/bn2 (index 17), (C, H, W).
- ConvNeXt: outputs of the four stages, (C, H, W).
Each wrapper keeps the backbone as ``backbone`` (the deployable student), reports the per-stage
feature shapes for an input size, the pre-logit width and the prefix-token count, and returns
``(logits, (f1, f2, f3, f4))``.
"""
from mindspore import nn

from ..backbones.convnext import ConvNeXt
from ..backbones.mlp_mixer import TokenMlpNet
from ..backbones.mobilenetv2 import MobileNetV2
from ..backbones.resnet import ResNet
from ..backbones.swin import SwinTransformer
from ..backbones.vit import VisionTransformer


def block_taps(depth):
    """Block indices tapped in a 12/24-block isotropic model: (1, 3, depth - 3, depth - 1)."""
    if depth < 8:
        raise ValueError(f"OFA token taps need at least 8 blocks (four distinct taps), got depth {depth}")
    return (1, 3, depth - 3, depth - 1)


class StudentTaps(nn.Cell):
    """Base: ``backbone`` plus ``stage_shapes(img_size)``, ``feature_dim`` and ``token_num``."""

    token_num = 0

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = int(backbone.num_features)

    def is_cnn(self):
        return len(self.stage_shapes(224)[0]) == 3


class ResNetTaps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        chans = [getattr(b, f"layer{i}")[-1] for i in range(1, 5)]
        widths = [int(blk.bn3.gamma.shape[0]) if hasattr(blk, "bn3") else int(blk.bn2.gamma.shape[0])
                  for blk in chans]
        return [(widths[i], img_size // 2 ** (i + 2), img_size // 2 ** (i + 2)) for i in range(4)]

    def construct(self, x):
        b = self.backbone
        x = b.maxpool(b.act1(b.bn1(b.conv1(x))))
        f1 = b.layer1(x)
        f2 = b.layer2(f1)
        f3 = b.layer3(f2)
        f4 = b.layer4(f3)
        return b.forward_head(f4), (f1, f2, f3, f4)


class ViTTaps(StudentTaps):
    def __init__(self, backbone, token_num):
        super().__init__(backbone)
        self.token_num = token_num
        self.taps = block_taps(len(backbone.blocks))

    def stage_shapes(self, img_size):
        b = self.backbone
        n = b.patch_embed.num_patches + b.num_prefix_tokens
        return [(n, b.embed_dim)] * 4

    def construct(self, x):
        b = self.backbone
        x = b._pos_embed(b.patch_embed(x))
        feats = []
        for i, blk in enumerate(b.blocks):
            x = blk(x)
            if i in self.taps:
                feats.append(x)
        return b.forward_head(b.norm(x)), (feats[0], feats[1], feats[2], feats[3])


class MixerTaps(StudentTaps):
    def __init__(self, backbone):
        super().__init__(backbone)
        self.taps = block_taps(len(backbone.blocks))

    def stage_shapes(self, img_size):
        b = self.backbone
        return [(b.stem.num_patches, b.embed_dim)] * 4

    def construct(self, x):
        b = self.backbone
        x = b.stem(x)
        feats = []
        for i, blk in enumerate(b.blocks):
            x = blk(x)
            if i in self.taps:
                feats.append(x)
        return b.forward_head(b.norm(x)), (feats[0], feats[1], feats[2], feats[3])


class SwinTaps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        shapes = []
        for stage in b.layers:
            h, w = stage.output_resolution
            shapes.append((h * w, int(stage.blocks[-1].norm1.gamma.shape[0])))
        if len(shapes) != 4:
            raise ValueError(f"OFA Swin taps need 4 stages, got {len(shapes)}")
        return shapes

    def construct(self, x):
        b = self.backbone
        x = b.patch_embed(x)
        feats = []
        for stage in b.layers:
            x = stage(x)
            feats.append(x.reshape(x.shape[0], -1, x.shape[3]))
        return b.forward_head(b.norm(x)), (feats[0], feats[1], feats[2], feats[3])


class MobileNetV2Taps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        c = [int(b.blocks[s][-1].bn3.gamma.shape[0]) for s in (1, 2, 4)] + [b.num_features]
        return [(c[i], img_size // r, img_size // r) for i, r in enumerate((4, 8, 16, 32))]

    def construct(self, x):
        b = self.backbone
        x = b.stem(x)
        x = b.blocks[0](x)
        f1 = b.blocks[1](x)
        f2 = b.blocks[2](f1)
        f3 = b.blocks[4](b.blocks[3](f2))
        f4 = b.head_map(b.blocks[6](b.blocks[5](f3)))
        return b.forward_head(f4), (f1, f2, f3, f4)


class ConvNeXtTaps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        dims = [int(s.blocks[-1].gamma.shape[0]) for s in b.stages]
        return [(dims[i], img_size // 2 ** (i + 2), img_size // 2 ** (i + 2)) for i in range(4)]

    def construct(self, x):
        b = self.backbone
        x = b.stem(x)
        f1 = b.stages[0](x)
        f2 = b.stages[1](f1)
        f3 = b.stages[2](f2)
        f4 = b.stages[3](f3)
        return b.forward_head(f4), (f1, f2, f3, f4)


def student_taps(backbone, prefix_token_source="num_prefix_tokens"):
    """Wrap ``backbone`` in the tap module of its family.

    ``prefix_token_source``: 'num_prefix_tokens' (CLS passes through the projector and is its
    feature) or 'num_tokens' (the official code's attribute, absent in timm 0.6.5 ViTs -> 0 prefix
    tokens, under which the 197-token ViT features cannot be merged and construction fails).
    """
    if isinstance(backbone, ResNet):
        return ResNetTaps(backbone)
    if isinstance(backbone, VisionTransformer):
        if prefix_token_source not in ("num_prefix_tokens", "num_tokens"):
            raise ValueError(f"prefix_token_source must be 'num_prefix_tokens' or 'num_tokens', "
                             f"got {prefix_token_source!r}")
        token_num = backbone.num_prefix_tokens if prefix_token_source == "num_prefix_tokens" else 0
        return ViTTaps(backbone, token_num)
    if isinstance(backbone, TokenMlpNet):
        return MixerTaps(backbone)
    if isinstance(backbone, SwinTransformer):
        return SwinTaps(backbone)
    if isinstance(backbone, MobileNetV2):
        return MobileNetV2Taps(backbone)
    if isinstance(backbone, ConvNeXt):
        return ConvNeXtTaps(backbone)
    raise TypeError(f"OFA-KD has no stage taps for {type(backbone).__name__}; supported: ResNet, VisionTransformer, "
                    "MlpMixer/ResMlp, SwinTransformer, MobileNetV2, ConvNeXt")
