"""Framework-free preparation of OpenAI CLIP checkpoints for the CLIP encoders of both trees.

- ``resize_visual_positional_embedding``: the (1 + g*g, W) table of a square checkpoint -> (1 + gh*gw, W)
  by bilinear interpolation of the grid (torch ``F.interpolate(mode='bilinear', align_corners=False)``,
  as IRRA does for ViT-B/16 at 384x128); the class position is kept.
- ``resize_text_positional_embedding``: the (77, W) text table -> (L, W); L < 77 truncates, L > 77 is a
  linear interpolation over positions (align_corners=False) [design choice: UFine captions exceed 77
  tokens and no public CFAM code fixes how the table is extended].
- ``prepare_clip_state``: drop the non-tensor entries of an OpenAI JIT checkpoint, prefix names and
  resize both tables to a target model's shapes.
"""
import numpy as np

CONFIG_KEYS = ("input_resolution", "context_length", "vocab_size")


def _linear_weights(n_in, n_out):
    """Source indices (i0, i1) and weights (w0, w1) of 1-D linear resampling, align_corners=False."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def resize_1d(table, length):
    """(N, C) -> (length, C), linear along axis 0 (align_corners=False), float64 math."""
    t = np.asarray(table, np.float64)
    i0, i1, w0, w1 = _linear_weights(t.shape[0], length)
    return w0[:, None] * t[i0] + w1[:, None] * t[i1]


def resize_grid(grid, out_hw):
    """(H, W, C) -> (out_h, out_w, C) bilinear, align_corners=False, float64 math."""
    g = np.asarray(grid, np.float64)
    r0, r1, rw0, rw1 = _linear_weights(g.shape[0], out_hw[0])
    c0, c1, cw0, cw1 = _linear_weights(g.shape[1], out_hw[1])
    rows = rw0[:, None, None] * g[r0] + rw1[:, None, None] * g[r1]
    return cw0[None, :, None] * rows[:, c0] + cw1[None, :, None] * rows[:, c1]


def resize_visual_positional_embedding(posemb, grid_hw, old_grid_hw=None):
    """(1 + h*w, C) -> (1 + grid_hw[0]*grid_hw[1], C); ``old_grid_hw`` defaults to a square grid."""
    posemb = np.asarray(posemb)
    n = posemb.shape[0] - 1
    if old_grid_hw is None:
        side = int(round(np.sqrt(n)))
        if side * side != n:
            raise ValueError(f"positional_embedding has {n} grid positions, not a square; pass old_grid_hw")
        old_grid_hw = (side, side)
    if tuple(old_grid_hw) == tuple(grid_hw):
        return posemb
    grid = posemb[1:].reshape(old_grid_hw[0], old_grid_hw[1], -1)
    new = resize_grid(grid, grid_hw).reshape(grid_hw[0] * grid_hw[1], -1)
    return np.concatenate([posemb[:1], new.astype(posemb.dtype)], axis=0)


def resize_text_positional_embedding(posemb, length):
    """(L0, C) -> (length, C): the first ``length`` rows if shorter, linear interpolation if longer."""
    posemb = np.asarray(posemb)
    if length <= posemb.shape[0]:
        return posemb[:length]
    return resize_1d(posemb, length).astype(posemb.dtype)


def prepare_clip_state(state, prefix="", grid_hw=None, context_length=None):
    """OpenAI CLIP ``{name: array}`` -> ``{prefix + name: array}`` for a CLIP encoder of this project.

    Drops the JIT checkpoint's config entries (input_resolution, context_length, vocab_size), resizes
    ``visual.positional_embedding`` to the image grid ``grid_hw`` = (H/patch, W/patch) and the text
    ``positional_embedding`` to ``context_length`` (each when given). The result has PyTorch names;
    ``common.weights.convert_state_dict`` maps it to MindSpore.
    """
    out = {}
    for key, value in state.items():
        if key in CONFIG_KEYS:
            continue
        value = np.asarray(value)
        if key == "visual.positional_embedding" and grid_hw is not None:
            value = resize_visual_positional_embedding(value, tuple(grid_hw))
        elif key == "positional_embedding" and context_length is not None:
            value = resize_text_positional_embedding(value, int(context_length))
        out[prefix + key] = value
    return out
