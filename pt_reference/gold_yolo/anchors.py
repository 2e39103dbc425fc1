"""Anchor points, strides and anchor boxes of the Gold-YOLO heads (PyTorch twin).

Follows `yolov6/assigners/anchor_generator.py::generate_anchors`. Only the feature-map shapes are
read, so everything is a constant of the graph. Anchor order is level by level, row-major inside a
level; the anchor-based ('ab') mode tiles each level `NUM_AB_ANCHORS` times (anchor-major), the
order of the fuse_ab head outputs.
"""
import torch

NUM_AB_ANCHORS = 3


def _level_hw(feats):
    return [(int(f.shape[-2]), int(f.shape[-1])) for f in feats]


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
    for (h, w), stride in zip(_level_hw(feats), strides):
        sx = torch.arange(w, dtype=torch.float32) + grid_cell_offset
        sy = torch.arange(h, dtype=torch.float32) + grid_cell_offset
        if not is_eval:
            sx, sy = sx * stride, sy * stride
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        point = torch.stack([sx, sy], -1).reshape(-1, 2).repeat(reps, 1)
        points.append(point)
        stride_list.append(torch.full((point.shape[0], 1), float(stride)))
        counts.append(point.shape[0])
        if not is_eval:
            half = grid_cell_size * stride * 0.5
            boxes.append(torch.cat([point - half, point + half], -1))
    points, stride_tensor = torch.cat(points), torch.cat(stride_list)
    if is_eval:
        return points, stride_tensor
    return torch.cat(boxes), points, counts, stride_tensor
