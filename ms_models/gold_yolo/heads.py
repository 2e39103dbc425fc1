"""Efficient decoupled heads of Gold-YOLO: 'plain', 'distill_ns', 'fuse_ab' (MindSpore).

Output contract (identical in ``pt_reference.gold_yolo.heads``). Input: the neck maps [p3, n4, n5]
at strides 8/16/32; A = sum(h_i * w_i) anchor points (8400 at 640×640); nc classes; R = reg_max.

Eval mode (``model.set_train(False)``), every head: one tensor (B, A, 4 + 1 + nc) =
  [cx, cy, w, h] in input pixels, an all-ones objectness column, sigmoid class scores.
  Boxes decode distances (l, t, r, b) around anchor points (grid + 0.5), times the level stride.
  Distances: plain / fuse_ab: DFL expectation softmax(R+1 bins) · proj_conv when use_dfl, else the
  raw 4 regression channels; distill_ns: the ``reg_preds_lrtb`` branch (no DFL at inference).
  Anchor order: level (stride 8, 16, 32), then row-major y, x.

Train mode (``model.set_train(True)``), a tuple; ``feats`` is a tuple of the 3 per-level maps after
the ``stems`` (same shapes as the head inputs; the loss only reads their grid sizes):
  plain:      (feats, cls_scores (B,A,nc) sigmoid, reg_distri (B,A,4*(R+1)) raw)
  distill_ns: (feats, cls_scores (B,A,nc) sigmoid, reg_distri (B,A,4*(R+1)) raw,
               reg_lrtb (B,A,4) raw distances in stride units)
  fuse_ab:    (feats, cls_scores_ab (B,3A,nc) sigmoid, reg_ab (B,3A,4),
               cls_scores_af (B,A,nc) sigmoid, reg_distri_af (B,A,4*(R+1)) raw)
  reg_ab per anchor = [tx, ty raw, (2*sigmoid(tw))^2 * aw, (2*sigmoid(th))^2 * ah] with (aw, ah) the
  ``anchors_init`` size in pixels / stride (grid units); 3A order: level, anchor (3), row-major y, x.
  With use_dfl=False (reg_max=0) the reg_distri tensors are the 4 raw distances.

The construct paths collect per-level results in tuples, never lists: MindSpore's ONNX converter
has no ``make_list``.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import Constant

from .common import ConvBNAct, prior_bias

STRIDES = (8, 16, 32)
ANCHORS_INIT = ((10, 13, 19, 19, 33, 23), (30, 61, 59, 59, 59, 119), (116, 90, 185, 185, 373, 326))
DFL_BINS_OFF = 17  # official Detect never receives reg_max: proj has 17 entries without DFL too


def _flat(x):
    """(B, C, H, W) -> (B, H*W, C)."""
    b, c = x.shape[:2]
    return x.reshape(b, c, -1).transpose(0, 2, 1)


def _raw_distances(maps):
    """Per-level (B, 4, H_i, W_i) regression maps -> tuple of (B, 4, H_i*W_i)."""
    out = ()
    for r in maps:
        out = out + (r.reshape(r.shape[0], 4, -1),)
    return out


def _cat_flat(maps, sigmoid=False):
    """Per-level maps (B, C, H_i, W_i) -> (B, sum H_i*W_i, C), optionally through a sigmoid."""
    out = ()
    for m in maps:
        out = out + (_flat(ops.sigmoid(m) if sigmoid else m),)
    return ops.cat(out, 1)


def _preds(in_channels, cout, bias_value):
    """1×1 prediction convs, zero weights and constant bias (``Detect.initialize_biases``)."""
    return nn.CellList([nn.Conv2d(c, cout, 1, pad_mode='valid', has_bias=True, weight_init='zeros',
                                   bias_init=Constant(bias_value)) for c in in_channels])


class DetectBase(nn.Cell):
    """Shared stems/cls_convs/reg_convs per level, ``proj``/``proj_conv`` and the box decoder."""

    def __init__(self, in_channels, num_classes, use_dfl, reg_max):
        super().__init__()
        if use_dfl and reg_max < 1:
            raise ValueError(f"heads: use_dfl=True needs reg_max >= 1, got reg_max={reg_max}")
        if not use_dfl and reg_max != 0:
            raise ValueError(f"heads: use_dfl=False needs reg_max=0 (4 direct distances), got reg_max={reg_max}")
        self.nc, self.use_dfl, self.reg_max = num_classes, use_dfl, reg_max
        self.nl = len(in_channels)
        self.stride = STRIDES
        bins = reg_max + 1 if use_dfl else DFL_BINS_OFF
        proj = np.linspace(0, bins - 1, bins, dtype=np.float32)
        self.proj = ms.Parameter(ms.Tensor(proj), name='proj', requires_grad=False)
        self.proj_conv = nn.Conv2d(bins, 1, 1, pad_mode='valid', has_bias=False,
                                   weight_init=ms.Tensor(proj.reshape(1, bins, 1, 1)))
        self.proj_conv.weight.requires_grad = False
        self.stems = nn.CellList([ConvBNAct(c, c, 1, act='silu') for c in in_channels])
        self.cls_convs = nn.CellList([ConvBNAct(c, c, 3, act='silu') for c in in_channels])
        self.reg_convs = nn.CellList([ConvBNAct(c, c, 3, act='silu') for c in in_channels])

    def _dfl(self, reg):
        """(B, 4*(R+1), H, W) -> expected distances (B, 4, H*W)."""
        b, _, h, w = reg.shape
        reg = reg.reshape(b, 4, self.reg_max + 1, h * w).transpose(0, 2, 1, 3)
        return self.proj_conv(ops.softmax(reg, 1)).reshape(b, 4, h * w)

    def _decode(self, feats, cls_list, dist_list):
        """Per-level class logits (B,nc,H,W) and distances (B,4,H*W) -> (B, A, 5+nc)."""
        points, strides, scores = (), (), ()
        for f, s, c in zip(feats, self.stride, cls_list):
            h, w = f.shape[-2:]
            xs = ops.broadcast_to((ops.arange(w).astype(f.dtype) + 0.5).reshape(1, w), (h, w))
            ys = ops.broadcast_to((ops.arange(h).astype(f.dtype) + 0.5).reshape(h, 1), (h, w))
            points = points + (ops.stack((xs, ys), -1).reshape(-1, 2),)
            strides = strides + (ops.full((h * w, 1), float(s), dtype=f.dtype),)
            scores = scores + (_flat(ops.sigmoid(c)),)
        points, strides = ops.cat(points), ops.cat(strides)
        scores = ops.cat(scores, 1)
        dist = ops.cat(dist_list, -1).transpose(0, 2, 1)
        x1y1 = points - dist[..., :2]
        x2y2 = points + dist[..., 2:]
        boxes = ops.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), -1) * strides
        return ops.cat((boxes, ops.ones_like(boxes[..., :1]), scores), -1)

    def _level(self, i, x):
        """Stem, then the cls and reg features of level i."""
        x = self.stems[i](x)
        return x, self.cls_convs[i](x), self.reg_convs[i](x)

    def _distances(self, reg_list):
        """Eval distances per level (B, 4, H*W): DFL expectation or the raw 4 channels."""
        if not self.use_dfl:
            return _raw_distances(reg_list)
        out = ()
        for r in reg_list:
            out = out + (self._dfl(r),)
        return out


class Detect(DetectBase):
    """Plain anchor-free head (``yolov6/models/effidehead.py``)."""

    def __init__(self, in_channels, num_classes=80, use_dfl=True, reg_max=16):
        super().__init__(in_channels, num_classes, use_dfl, reg_max)
        self.cls_preds = _preds(in_channels, num_classes, prior_bias())
        self.reg_preds = _preds(in_channels, 4 * (reg_max + 1), 1.0)

    def construct(self, xs):
        feats, cls_list, reg_list = (), (), ()
        for i in range(self.nl):
            x, cls_feat, reg_feat = self._level(i, xs[i])
            feats = feats + (x,)
            cls_list = cls_list + (self.cls_preds[i](cls_feat),)
            reg_list = reg_list + (self.reg_preds[i](reg_feat),)
        if self.training:
            return feats, _cat_flat(cls_list, sigmoid=True), _cat_flat(reg_list)
        return self._decode(feats, cls_list, self._distances(reg_list))


class DetectDistillNS(DetectBase):
    """Self-distillation student head (``heads/effidehead_distill_ns.py``): adds ``reg_preds_lrtb``."""

    def __init__(self, in_channels, num_classes=80, use_dfl=True, reg_max=16):
        super().__init__(in_channels, num_classes, use_dfl, reg_max)
        self.cls_preds = _preds(in_channels, num_classes, prior_bias())
        self.reg_preds = _preds(in_channels, 4 * (reg_max + 1), 1.0)
        self.reg_preds_lrtb = _preds(in_channels, 4, 1.0)

    def construct(self, xs):
        feats, cls_list, reg_list, lrtb_list = (), (), (), ()
        for i in range(self.nl):
            x, cls_feat, reg_feat = self._level(i, xs[i])
            feats = feats + (x,)
            cls_list = cls_list + (self.cls_preds[i](cls_feat),)
            lrtb_list = lrtb_list + (self.reg_preds_lrtb[i](reg_feat),)
            if self.training:
                reg_list = reg_list + (self.reg_preds[i](reg_feat),)
        if self.training:
            return feats, _cat_flat(cls_list, sigmoid=True), _cat_flat(reg_list), _cat_flat(lrtb_list)
        return self._decode(feats, cls_list, _raw_distances(lrtb_list))


class DetectFuseAB(DetectBase):
    """Step-1 head with an anchor-free (``*_af``) and a training-only anchor-based (``*_ab``) branch."""

    def __init__(self, in_channels, num_classes=80, use_dfl=True, reg_max=16, anchors=ANCHORS_INIT):
        super().__init__(in_channels, num_classes, use_dfl, reg_max)
        self.na = len(anchors[0]) // 2
        grid_anchors = np.asarray(anchors, np.float32) / np.asarray(STRIDES, np.float32)[:, None]
        self.anchors_init = ms.Tensor(grid_anchors.reshape(self.nl, self.na, 2))
        self.cls_preds_af = _preds(in_channels, num_classes, prior_bias())
        self.reg_preds_af = _preds(in_channels, 4 * (reg_max + 1), 1.0)
        self.cls_preds_ab = _preds(in_channels, num_classes * self.na, prior_bias())
        self.reg_preds_ab = _preds(in_channels, 4 * self.na, 1.0)

    def _anchor_based(self, i, cls_feat, reg_feat):
        """(B, na*H*W, nc) sigmoid scores and (B, na*H*W, 4) boxes of level i."""
        b, _, h, w = cls_feat.shape
        cls = ops.sigmoid(self.cls_preds_ab[i](cls_feat)).reshape(b, self.na, -1, h, w).transpose(0, 1, 3, 4, 2)
        reg = self.reg_preds_ab[i](reg_feat).reshape(b, self.na, -1, h, w).transpose(0, 1, 3, 4, 2)
        wh = (ops.sigmoid(reg[..., 2:4]) * 2) ** 2 * self.anchors_init[i].reshape(1, self.na, 1, 1, 2)
        reg = ops.cat((reg[..., 0:2], wh), -1)
        return cls.reshape(b, self.na * h * w, -1), reg.reshape(b, self.na * h * w, 4)

    def construct(self, xs):
        feats, cls_list, reg_list, cls_ab, reg_ab = (), (), (), (), ()
        for i in range(self.nl):
            x, cls_feat, reg_feat = self._level(i, xs[i])
            feats = feats + (x,)
            cls_list = cls_list + (self.cls_preds_af[i](cls_feat),)
            reg_list = reg_list + (self.reg_preds_af[i](reg_feat),)
            if self.training:
                c, r = self._anchor_based(i, cls_feat, reg_feat)
                cls_ab = cls_ab + (c,)
                reg_ab = reg_ab + (r,)
        if self.training:
            return (feats, ops.cat(cls_ab, 1), ops.cat(reg_ab, 1), _cat_flat(cls_list, sigmoid=True),
                    _cat_flat(reg_list))
        return self._decode(feats, cls_list, self._distances(reg_list))


HEADS = {'plain': Detect, 'distill_ns': DetectDistillNS, 'fuse_ab': DetectFuseAB}
