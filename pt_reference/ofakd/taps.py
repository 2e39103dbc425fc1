"""Student stage taps on timm models, PyTorch twin of ``ms_models.ofakd.taps`` (same tap points)."""
from timm.models.convnext import ConvNeXt
from timm.models.efficientnet import EfficientNet
from timm.models.mlp_mixer import MlpMixer
from timm.models.resnet import ResNet
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer
from torch import nn


def block_taps(depth):
    if depth < 8:
        raise ValueError(f"OFA token taps need at least 8 blocks (four distinct taps), got depth {depth}")
    return (1, 3, depth - 3, depth - 1)


class StudentTaps(nn.Module):
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
        widths = [getattr(b, f"layer{i}")[-1] for i in range(1, 5)]
        widths = [(blk.bn3 if hasattr(blk, "bn3") else blk.bn2).num_features for blk in widths]
        return [(widths[i], img_size // 2 ** (i + 2), img_size // 2 ** (i + 2)) for i in range(4)]

    def forward(self, x):
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
        return [(b.patch_embed.num_patches + b.num_prefix_tokens, b.embed_dim)] * 4

    def forward(self, x):
        b = self.backbone
        x = b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))
        feats = []
        for i, blk in enumerate(b.blocks):
            x = blk(x)
            if i in self.taps:
                feats.append(x)
        return b.forward_head(b.norm(x)), tuple(feats)


class MixerTaps(StudentTaps):
    def __init__(self, backbone):
        super().__init__(backbone)
        self.taps = block_taps(len(backbone.blocks))

    def stage_shapes(self, img_size):
        b = self.backbone
        return [(b.stem.num_patches, b.embed_dim)] * 4

    def forward(self, x):
        b = self.backbone
        x = b.stem(x)
        feats = []
        for i, blk in enumerate(b.blocks):
            x = blk(x)
            if i in self.taps:
                feats.append(x)
        return b.forward_head(b.norm(x)), tuple(feats)


class SwinTaps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        out = []
        for stage in b.layers:
            h, w = stage.output_resolution
            out.append((h * w, stage.blocks[-1].norm1.normalized_shape[0]))
        if len(out) != 4:
            raise ValueError(f"OFA Swin taps need 4 stages, got {len(out)}")
        return out

    def forward(self, x):
        b = self.backbone
        x = b.patch_embed(x)
        feats = []
        for stage in b.layers:
            x = stage(x)
            feats.append(x.reshape(x.shape[0], -1, x.shape[3]))
        return b.forward_head(b.norm(x)), tuple(feats)


class MobileNetV2Taps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        c = [b.blocks[s][-1].bn3.num_features for s in (1, 2, 4)] + [b.num_features]
        return [(c[i], img_size // r, img_size // r) for i, r in enumerate((4, 8, 16, 32))]

    def forward(self, x):
        b = self.backbone
        x = b.blocks[0](b.bn1(b.conv_stem(x)))
        f1 = b.blocks[1](x)
        f2 = b.blocks[2](f1)
        f3 = b.blocks[4](b.blocks[3](f2))
        f4 = b.bn2(b.conv_head(b.blocks[6](b.blocks[5](f3))))
        return b.forward_head(f4), (f1, f2, f3, f4)


class ConvNeXtTaps(StudentTaps):
    def stage_shapes(self, img_size):
        b = self.backbone
        dims = [s.blocks[-1].gamma.shape[0] for s in b.stages]
        return [(dims[i], img_size // 2 ** (i + 2), img_size // 2 ** (i + 2)) for i in range(4)]

    def forward(self, x):
        b = self.backbone
        x = b.stem(x)
        f1 = b.stages[0](x)
        f2 = b.stages[1](f1)
        f3 = b.stages[2](f2)
        f4 = b.stages[3](f3)
        return b.forward_head(b.norm_pre(f4)), (f1, f2, f3, f4)


def student_taps(backbone, prefix_token_source="num_prefix_tokens"):
    if isinstance(backbone, ResNet):
        return ResNetTaps(backbone)
    if isinstance(backbone, VisionTransformer):
        if prefix_token_source not in ("num_prefix_tokens", "num_tokens"):
            raise ValueError(f"prefix_token_source must be 'num_prefix_tokens' or 'num_tokens', "
                             f"got {prefix_token_source!r}")
        token_num = backbone.num_prefix_tokens if prefix_token_source == "num_prefix_tokens" else 0
        return ViTTaps(backbone, token_num)
    if isinstance(backbone, MlpMixer):
        return MixerTaps(backbone)
    if isinstance(backbone, SwinTransformer):
        return SwinTaps(backbone)
    if isinstance(backbone, EfficientNet):
        return MobileNetV2Taps(backbone)
    if isinstance(backbone, ConvNeXt):
        return ConvNeXtTaps(backbone)
    raise TypeError(f"OFA-KD has no stage taps for {type(backbone).__name__}")
