"""Gather-and-Distribute necks RepGDNeck (N/S), GDNeck (M) and GDNeck2 (L) (MindSpore; PyTorch twin
``pt_reference.gold_yolo.neck``).

Input (c2, c3, c4, c5) at strides 4/8/16/32; output (p3, n4, n5) at strides 8/16/32 with channels
cl[6], cl[8], cl[10] (cl = the 11-entry channels list of ``model.py``).
"""
from mindspore import nn, ops

from .common import BepC3, ConvBNAct, GoldConv, RepBlock, avg_pool_to, csp_act, get_block, resize_bilinear
from .transformer import InjectionMultiSum_Auto_pool, PyramidPoolAgg, TopBasicLayer


class SimFusion_4in(nn.Cell):
    """Pool c2, c3 to the c4 size, keep c4, bilinear-upsample c5; concat channels (no params)."""

    def __init__(self, pool_mode):
        super().__init__()
        self.pool_mode = pool_mode

    def construct(self, xs):
        x_l, x_m, x_s, x_n = xs
        size = x_s.shape[-2:]
        return ops.cat((avg_pool_to(x_l, size, self.pool_mode), avg_pool_to(x_m, size, self.pool_mode),
                        x_s, resize_bilinear(x_n, size)), 1)


class SimFusion_3in(nn.Cell):
    """cv_fuse(cat(pool(x0), cv1(x1), upsample(x2))) at the size of x1."""

    def __init__(self, cin, cout, pool_mode):
        super().__init__()
        self.pool_mode = pool_mode
        self.cv1 = ConvBNAct(cin, cout, 1, act='relu')
        self.cv_fuse = ConvBNAct(cout * 3, cout, 1, act='relu')

    def construct(self, xs):
        size = xs[1].shape[-2:]
        x0 = avg_pool_to(xs[0], size, self.pool_mode)
        return self.cv_fuse(ops.cat((x0, self.cv1(xs[1]), resize_bilinear(xs[2], size)), 1))


class AdvPoolFusion(nn.Cell):
    """cat(pool(x1 to the size of x2), x2) (no params)."""

    def __init__(self, pool_mode):
        super().__init__()
        self.pool_mode = pool_mode

    def construct(self, x1, x2):
        return ops.cat((avg_pool_to(x1, x2.shape[-2:], self.pool_mode), x2), 1)


class GDNeck(nn.Cell):
    """Low-GD (conv fusion injected into P4/P3) and High-GD (attention fusion injected into N4/N5).

    ``csp_e=None`` builds RepBlock stages (RepGDNeck), otherwise BepC3 stages. ``n5_from_p4``
    (GDNeck2) pools p4 instead of n4 into LAF_n5. ``cfg`` keys: fusion_in, embed_dim_p,
    embed_dim_n, trans_channels, depths, num_heads, key_dim, mlp_ratio, attn_ratio, c2t_stride,
    drop_path_rate, fuse_block_num, pool_mode, attn_scale, inject_pool_hsigmoid.
    """

    n5_from_p4 = False

    def __init__(self, cl, repeats, training_mode, cfg, csp_e=None):
        super().__init__()
        block = get_block(training_mode)
        act = csp_act(training_mode)
        pool = cfg['pool_mode']
        tc = cfg['trans_channels']
        self.trans_channels = tuple(tc)

        def stage(cin, cout, n):
            if csp_e is None:
                return RepBlock(cin, cout, n, block)
            return BepC3(cin, cout, n, csp_e, block, act)

        def inject(c):
            return InjectionMultiSum_Auto_pool(c, c, pool, cfg['inject_pool_hsigmoid'])

        self.low_FAM = SimFusion_4in(pool)
        self.low_IFM = nn.SequentialCell(
            [GoldConv(cfg['fusion_in'], cfg['embed_dim_p'])]
            + [block(cfg['embed_dim_p'], cfg['embed_dim_p']) for _ in range(cfg['fuse_block_num'])]
            + [GoldConv(cfg['embed_dim_p'], tc[0] + tc[1])])
        self.reduce_layer_c5 = ConvBNAct(cl[4], cl[5], 1, act='relu')
        self.LAF_p4 = SimFusion_3in(cl[3], cl[5], pool)
        self.Inject_p4 = inject(cl[5])
        self.Rep_p4 = stage(cl[5], cl[5], repeats[5])
        self.reduce_layer_p4 = ConvBNAct(cl[5], cl[6], 1, act='relu')
        self.LAF_p3 = SimFusion_3in(cl[5], cl[6], pool)
        self.Inject_p3 = inject(cl[6])
        self.Rep_p3 = stage(cl[6], cl[6], repeats[6])
        self.high_FAM = PyramidPoolAgg(cfg['c2t_stride'], pool)
        self.high_IFM = TopBasicLayer(cfg['depths'], cfg['embed_dim_n'], cfg['key_dim'], cfg['num_heads'],
                                      cfg['mlp_ratio'], cfg['attn_ratio'], cfg['drop_path_rate'], cfg['attn_scale'])
        self.conv_1x1_n = nn.Conv2d(cfg['embed_dim_n'], tc[2] + tc[3], 1, 1, pad_mode='valid', has_bias=True)
        self.LAF_n4 = AdvPoolFusion(pool)
        self.Inject_n4 = inject(cl[8])
        self.Rep_n4 = stage(cl[6] + cl[7], cl[8], repeats[7])
        self.LAF_n5 = AdvPoolFusion(pool)
        self.Inject_n5 = inject(cl[10])
        self.Rep_n5 = stage(cl[5] + cl[9], cl[10], repeats[8])

    def construct(self, xs):
        c2, c3, c4, c5 = xs
        low_global = ops.split(self.low_IFM(self.low_FAM(xs)), self.trans_channels[0:2], 1)

        c5_half = self.reduce_layer_c5(c5)
        p4 = self.Rep_p4(self.Inject_p4(self.LAF_p4((c3, c4, c5_half)), low_global[0]))

        p4_half = self.reduce_layer_p4(p4)
        p3 = self.Rep_p3(self.Inject_p3(self.LAF_p3((c2, c3, p4_half)), low_global[1]))

        high = self.conv_1x1_n(self.high_IFM(self.high_FAM((p3, p4, c5))))
        high_global = ops.split(high, self.trans_channels[2:4], 1)

        n4 = self.Rep_n4(self.Inject_n4(self.LAF_n4(p3, p4_half), high_global[0]))
        n5_in = p4 if self.n5_from_p4 else n4
        n5 = self.Rep_n5(self.Inject_n5(self.LAF_n5(n5_in, c5_half), high_global[1]))
        return p3, n4, n5


class RepGDNeck(GDNeck):
    """GD neck with RepBlock stages (N/S; built with csp_e=None)."""


class GDNeck2(GDNeck):
    """GDNeck whose LAF_n5 pools p4 instead of n4 (L)."""

    n5_from_p4 = True


NECKS = {'RepGDNeck': RepGDNeck, 'GDNeck': GDNeck, 'GDNeck2': GDNeck2}
