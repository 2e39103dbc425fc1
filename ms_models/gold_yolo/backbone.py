"""EfficientRep (N/S) and CSPBepBackbone (M/L) backbones (MindSpore; twin in pt_reference).

Input (B,3,H,W); output (c2, c3, c4, c5) at strides 4/8/16/32 with channels cl[1..4].
"""
from mindspore import nn

from .common import BepC3, CSPSPPF, SPPF, RepBlock, csp_act, get_block


class Backbone(nn.Cell):
    """``stem`` + ``ERBlock_2..5``; each ERBlock is SequentialCell(stride-2 block, stage[, SPPF layer]).

    ``csp_e=None`` gives EfficientRep (stage = RepBlock), a float gives CSPBepBackbone (stage =
    BepC3 with expansion ``csp_e``). ``cspsppf`` selects (Sim)CSPSPPF instead of (Sim)SPPF; the
    SPPF convs use SiLU for ``conv_silu`` and ReLU otherwise, as in the official code.
    """

    def __init__(self, channels, repeats, training_mode, csp_e=None, cspsppf=False, in_channels=3):
        super().__init__()
        block = get_block(training_mode)
        act = csp_act(training_mode)

        def stage(c, n):
            if csp_e is None:
                return RepBlock(c, c, n, block)
            return BepC3(c, c, n, csp_e, block, act)

        self.stem = block(in_channels, channels[0], 3, 2)
        for k in range(2, 6):
            cin, cout = channels[k - 2], channels[k - 1]
            layers = [block(cin, cout, 3, 2), stage(cout, repeats[k - 1])]
            if k == 5:
                layers.append((CSPSPPF if cspsppf else SPPF)(cout, cout, act=act))
            setattr(self, f'ERBlock_{k}', nn.SequentialCell(layers))

    def construct(self, x):
        c2 = self.ERBlock_2(self.stem(x))
        c3 = self.ERBlock_3(c2)
        c4 = self.ERBlock_4(c3)
        c5 = self.ERBlock_5(c4)
        return c2, c3, c4, c5
