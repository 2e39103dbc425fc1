"""Anchor points, strides and anchor boxes of the Gold-YOLO heads (MindSpore).

Follows `yolov6/assigners/anchor_generator.py::generate_anchors`. Only the (static) feature-map
shapes are read, so under GRAPH mode everything folds to constants. Anchor order is level by
level, row-major inside a level; the anchor-based ('ab') mode tiles each level `NUM_AB_ANCHORS`
times (anchor-major), the order of the fuse_ab head outputs. Twin of
`pt_reference/gold_yolo/anchors.py`.
"""
import mindspore as ms
from mindspore import ops

NUM_AB_ANCHORS = 3


def generate_anchors(feats, strides=(8, 16, 32), grid_cell_size=5.0, grid_cell_offset=0.5,
                     mode="af", is_eval=False):
    """Anchors for maps `feats` (tensors (B, C, H_i, W_i)) at `strides`.

    is_eval=False -> (anchor_boxes (A, 4) xyxy px, anchor_points (A, 2) px, num_anchors_list,
    stride_tensor (A, 1)); anchor boxes are squares of side grid_cell_size * stride.
    is_eval=True -> (anchor_points (A, 2) in grid units, stride_tensor (A, 1)).
    mode 'af': one anchor per cell; 'ab': NUM_AB_ANCHORS per cell. All float32.
    """
    if mode not in ("af", "ab"):
        raise ValueError(f"anchors.generate_anchors: mode must be 'af' or 'ab', got {mode!r}")
    if len(feats) != len(strides):
        raise ValueError(f"anchors.generate_anchors: {len(feats)} feature maps but {len(strides)} strides")
    reps = NUM_AB_ANCHORS if mode == "ab" else 1
    boxes, points, counts, stride_list = [], [], [], []
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[-2], feat.shape[-1]
        sx = ops.arange(0, w, 1, dtype=ms.float32) + grid_cell_offset
        sy = ops.arange(0, h, 1, dtype=ms.float32) + grid_cell_offset
        if not is_eval:
            sx, sy = sx * stride, sy * stride
        sy, sx = ops.meshgrid(sy, sx, indexing="ij")
        point = ops.tile(ops.stack((sx, sy), -1).reshape(-1, 2), (reps, 1))
        points.append(point)
        stride_list.append(ops.fill(ms.float32, (h * w * reps, 1), float(stride)))
        counts.append(h * w * reps)
        if not is_eval:
            half = grid_cell_size * stride * 0.5
            boxes.append(ops.concat((point - half, point + half), -1))
    points, stride_tensor = ops.concat(points, 0), ops.concat(stride_list, 0)
    if is_eval:
        return points, stride_tensor
    return ops.concat(boxes, 0), points, counts, stride_tensor
