"""Gold-YOLO model and the registered builders ``gold_yolo_{n,s,m,l}`` (MindSpore).

Input (B, 3, H, W) float32 in [0, 1], H and W multiples of 32 (64 keeps every pooling ratio
integral). Output: see ``heads.py`` (eval: (B, A, 5 + nc) boxes; train: a tuple for the loss).
"""
import math

from mindspore import nn

from ..registry import register_model
from .backbone import Backbone
from .common import POOL_MODES, TRAINING_MODES
from .heads import HEADS
from .neck import NECKS

BASE_REPEATS = (1, 6, 12, 18, 6, 12, 12, 12, 12)
BASE_CHANNELS = (64, 128, 256, 512, 1024, 256, 128, 128, 256, 256, 512)
SHARED_NECK = dict(key_dim=8, mlp_ratio=1, attn_ratio=2, c2t_stride=2, drop_path_rate=0.1, fuse_block_num=3)

# Official configs/gold_yolo-{n,s,m,l}.py (spec §2). csp_e None = EfficientRep + RepBlock stages.
VARIANTS = {
    'n': dict(depth=0.33, width=0.25, csp_e=None, cspsppf=True, neck='RepGDNeck', training_mode='repvgg',
              fusion_in=480, embed_dim_p=96, embed_dim_n=352, trans_channels=(64, 32, 64, 128),
              depths=2, num_heads=4),
    's': dict(depth=0.33, width=0.50, csp_e=None, cspsppf=True, neck='RepGDNeck', training_mode='repvgg',
              fusion_in=960, embed_dim_p=128, embed_dim_n=704, trans_channels=(128, 64, 128, 256),
              depths=2, num_heads=4),
    'm': dict(depth=0.60, width=0.75, csp_e=float(2) / 3, cspsppf=False, neck='GDNeck', training_mode='repvgg',
              fusion_in=1440, embed_dim_p=192, embed_dim_n=1056, trans_channels=(192, 96, 192, 384),
              depths=2, num_heads=4),
    'l': dict(depth=1.0, width=1.0, csp_e=float(1) / 2, cspsppf=False, neck='GDNeck2', training_mode='conv_silu',
              fusion_in=1920, embed_dim_p=192, embed_dim_n=1408, trans_channels=(256, 128, 256, 512),
              depths=3, num_heads=8),
}


def scaled_repeats(depth):
    """Per-stage repeats: max(round(n * depth), 1) when n > 1, else n (9 entries)."""
    return [max(round(n * depth), 1) if n > 1 else n for n in BASE_REPEATS]


def scaled_channels(width):
    """Per-stage channels: ceil(c * width / 8) * 8 (11 entries, cl[0..10])."""
    return [math.ceil(c * width / 8) * 8 for c in BASE_CHANNELS]


class GoldYOLO(nn.Cell):
    """``backbone`` -> ``neck`` -> ``detect`` (the official top-level parameter-name prefixes).

    Args:
        variant: 'n', 's', 'm' or 'l' (spec §2: widths, depths, backbone/neck classes).
        num_classes: number of classes nc.
        head: 'plain' (EffiDeHead), 'distill_ns' (adds reg_preds_lrtb) or 'fuse_ab' (adds the
            anchor-based branch).
        use_dfl, reg_max: DFL regression with reg_max + 1 bins (True/16), or 4 direct distances
            (False/0, the shipped N config).
        training_mode: block type 'repvgg', 'conv_silu' or 'conv_relu'; None = variant default
            (repvgg for N/S/M, conv_silu for L).
        attn_scale: scale attention logits by key_dim**-0.5 (official: False).
        inject_pool_hsigmoid: apply h_sigmoid in the Inject pool branch (official: False).
        pool_mode: 'torch' (adaptive average pooling) or 'fixed_avgpool' (ONNX-export pooling).
        drop_path_rate: stochastic depth of the transformer blocks (official 0.1).
    """

    def __init__(self, variant='n', num_classes=80, head='plain', use_dfl=True, reg_max=16, training_mode=None,
                 attn_scale=False, inject_pool_hsigmoid=False, pool_mode='torch', drop_path_rate=0.1):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"gold_yolo: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if head not in HEADS:
            raise ValueError(f"gold_yolo: head must be one of {sorted(HEADS)}, got {head!r}")
        if pool_mode not in POOL_MODES:
            raise ValueError(f"gold_yolo: pool_mode must be one of {POOL_MODES}, got {pool_mode!r}")
        v = VARIANTS[variant]
        mode = training_mode or v['training_mode']
        if mode not in TRAINING_MODES:
            raise ValueError(f"gold_yolo: training_mode must be one of {TRAINING_MODES}, got {mode!r}")
        cl, rep = scaled_channels(v['width']), scaled_repeats(v['depth'])
        neck_cfg = dict(SHARED_NECK, drop_path_rate=drop_path_rate, pool_mode=pool_mode, attn_scale=attn_scale,
                        inject_pool_hsigmoid=inject_pool_hsigmoid,
                        **{k: v[k] for k in ('fusion_in', 'embed_dim_p', 'embed_dim_n', 'trans_channels',
                                             'depths', 'num_heads')})
        self.variant, self.head_type, self.training_mode = variant, head, mode
        self.backbone = Backbone(cl, rep, mode, csp_e=v['csp_e'], cspsppf=v['cspsppf'])
        self.neck = NECKS[v['neck']](cl, rep, mode, neck_cfg, csp_e=v['csp_e'])
        self.detect = HEADS[head]([cl[6], cl[8], cl[10]], num_classes, use_dfl, reg_max)
        self.stride = self.detect.stride

    def construct(self, x):
        return self.detect(self.neck(self.backbone(x)))


def _builder(variant):
    def build(num_classes=80, head='plain', use_dfl=True, reg_max=16, training_mode=None, attn_scale=False,
              inject_pool_hsigmoid=False, pool_mode='torch', drop_path_rate=0.1):
        return GoldYOLO(variant, num_classes=num_classes, head=head, use_dfl=use_dfl, reg_max=reg_max,
                        training_mode=training_mode, attn_scale=attn_scale,
                        inject_pool_hsigmoid=inject_pool_hsigmoid, pool_mode=pool_mode,
                        drop_path_rate=drop_path_rate)
    build.__name__ = f'gold_yolo_{variant}'
    build.__doc__ = f"Gold-YOLO-{variant.upper()} (see ``GoldYOLO`` for the keyword arguments)."
    return build


gold_yolo_n = register_model(_builder('n'))
gold_yolo_s = register_model(_builder('s'))
gold_yolo_m = register_model(_builder('m'))
gold_yolo_l = register_model(_builder('l'))
