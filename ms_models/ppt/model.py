"""PPT (token Pruning and Pooling Transformers, arXiv 2310.01812) on the MindSpore ViT/DeiT.

``PPTVisionTransformer`` is ``ms_models.backbones.vit.VisionTransformer`` with its blocks rebuilt as
``PPTBlock`` (same parameter names, so a DeiT checkpoint loads unchanged). Nothing is learned:

- every block after the first compression adds log(token size) to the attention logits of each key
  (proportional attention, ``prop_attn``);
- a compression block (0-indexed ``pp_loc_list``) runs attention, the residual add, then removes
  r tokens from the residual stream before its MLP. Per image, the variance of the ATS importance
  scores of the patch tokens decides: variance < tau -> pool (ToMe bipartite merge, size-weighted
  mean), otherwise prune (keep the N - r most important tokens). Both branches are computed for the
  whole batch and the result is selected per image, so every shape is static.

``set_trace(True)`` makes ``construct`` return ``(logits, trace)`` with, per compression block,
``(pool bits (B,), score variance (B,), source map (B, N_out, N_in), sizes (B, N_out))`` for parity checks.
"""
from mindspore import nn, ops

from ..backbones.vit import Block, VisionTransformer, VisionTransformerDistilled, _SIZES
from ..registry import register_model
from .token_ops import (bipartite_match, importance_scores, merge_sources, merge_weighted, one_hot_rows, prune,
                        score_variance)

DEFAULTS = {"r": 50, "pp_loc_list": (3, 6, 9), "tau": 7e-5, "var_ddof": 1, "prop_attn": True, "tau_rescale": False}


def token_schedule(num_tokens, depth, r, pp_loc_list, num_prefix=1):
    """Per block ``(tokens seen by attention, tokens removed)``; r is clamped to (N - prefix) // 2."""
    out, n = [], num_tokens
    for i in range(depth):
        rr = min(int(r), (n - num_prefix) // 2) if i in pp_loc_list else 0
        out.append((n, max(rr, 0)))
        n -= max(rr, 0)
    return out


def effective_tau(tau, num_patches, rescale):
    """tau, or tau * (196 / num_patches)^2 with ``rescale`` (the score variance scales as 1/N^2)."""
    return float(tau) * (196.0 / num_patches) ** 2 if rescale else float(tau)


class PPTBlock(Block):
    """Pre-norm block with proportional attention and, when ``r > 0``, adaptive token compression.

    ``construct(x, size)`` -> ``(x, size, trace)``: x (B, N, C), size (B, N, 1) -> (B, N-r, C),
    (B, N-r, 1); ``trace`` is ``()`` or ``(pool, variance, source, size)`` (see the module docstring).
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0, *, r=0, use_size=False,
                 tau=7e-5, var_ddof=1, num_prefix=1, prop_attn=True):
        super().__init__(dim, num_heads, mlp_ratio, qkv_bias, drop_path)
        self.r = int(r)
        self.use_size = bool(use_size)      # add log(size) to the logits (some earlier block compressed)
        self.tau = float(tau)
        self.var_ddof = int(var_ddof)
        self.num_prefix = int(num_prefix)
        self.prop_attn = bool(prop_attn)
        self.distill_token = num_prefix == 2
        self.trace = False

    def _attention(self, x, size):
        """Attention on norm1(x) with log-size key bias; returns (out, probs, v, k)."""
        attn = self.attn
        q, k, v = attn.qkv_heads(self.norm1(x))
        logits = ops.matmul(q * attn.scale, k.swapaxes(-2, -1))
        if self.use_size:
            logits = logits + ops.log(size)[:, None, None, :, 0]
        probs = ops.softmax(logits, axis=-1)
        return attn.merge_heads(ops.matmul(probs, v)), probs, v, k

    def _compress(self, x, size, probs, v, k):
        r = self.r
        scores = ops.stop_gradient(importance_scores(probs, v, self.num_prefix))
        var = score_variance(scores, self.num_prefix, self.var_ddof)
        pool = var < self.tau
        x_pr, s_pr, keep = prune(x, size, scores, r)
        unm_idx, merge = bipartite_match(k.mean(axis=1), r, self.distill_token)
        x_po, s_po = merge_weighted(x, size, unm_idx, merge, self.distill_token)
        sel = pool[:, None, None]
        x = ops.where(sel, x_po, x_pr)
        size = ops.where(sel, s_po, s_pr)
        if not self.trace:
            return x, size, ()
        n = probs.shape[-1]
        src = ops.where(sel, merge_sources(n, unm_idx, merge, self.distill_token), one_hot_rows(keep, n))
        return x, size, (pool.astype(x.dtype), var, src, size[:, :, 0])

    def construct(self, x, size):
        if not self.prop_attn:
            size = ops.ones_like(size)
        out, probs, v, k = self._attention(x, size)
        x = x + self.drop_path1(out)
        trace = ()
        if self.r > 0:
            x, size, trace = self._compress(x, size, probs, v, k)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x, size, trace


class _PPTMixin:
    """Rebuilds the blocks of a ViT as PPT blocks and runs them with token sizes."""

    @staticmethod
    def _check_ppt(depth, r, pp_loc_list, var_ddof, **_):
        bad = [i for i in pp_loc_list if not 0 <= int(i) < depth]
        if bad:
            raise ValueError(f"pp_loc_list {list(pp_loc_list)}: block indices {bad} outside 0..{depth - 1}")
        if int(r) < 0:
            raise ValueError(f"r must be >= 0, got {r}")
        if var_ddof not in (0, 1):
            raise ValueError(f"var_ddof must be 0 or 1, got {var_ddof}")

    def _build_ppt(self, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, r, pp_loc_list, tau,
                   var_ddof, prop_attn, tau_rescale):
        import numpy as np
        self.r = int(r)
        self.pp_loc_list = tuple(sorted(int(i) for i in pp_loc_list))
        self.tau = effective_tau(tau, self.patch_embed.num_patches, tau_rescale)
        self.var_ddof = int(var_ddof)
        self.prop_attn = bool(prop_attn)
        p = self.num_prefix_tokens
        schedule = token_schedule(self.patch_embed.num_patches + p, depth, r, self.pp_loc_list, p)
        rates = np.linspace(0, drop_path_rate, depth)
        blocks, compressed = [], False
        for i, (_, rr) in enumerate(schedule):
            blocks.append(PPTBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, float(rates[i]), r=rr,
                                   use_size=compressed and self.prop_attn, tau=self.tau, var_ddof=self.var_ddof,
                                   num_prefix=p, prop_attn=self.prop_attn))
            compressed = compressed or rr > 0
        self.blocks = nn.CellList(blocks)
        self.token_schedule = schedule
        self.return_trace = False

    def set_trace(self, enable=True):
        """``construct`` returns ``(logits, trace)`` (compile again after changing this)."""
        self.return_trace = bool(enable)
        for blk in self.blocks:
            blk.trace = bool(enable)

    def forward_tokens(self, x):
        """(B, 3, H, W) -> (normalised tokens (B, N_final, C), trace tuple)."""
        x = self._pos_embed(self.patch_embed(x))
        size = ops.ones((x.shape[0], x.shape[1], 1), x.dtype)
        trace = ()
        for blk in self.blocks:
            x, size, tr = blk(x, size)
            trace = trace + tr
        return self.norm(x), trace

    def forward_features(self, x):
        return self.forward_tokens(x)[0]

    def construct(self, x):
        tokens, trace = self.forward_tokens(x)
        logits = self.forward_head(tokens)
        if self.return_trace:
            return logits, trace
        return logits


def _split_kwargs(kwargs):
    ppt = {k: kwargs.pop(k, v) for k, v in DEFAULTS.items()}
    return ppt, kwargs


class PPTVisionTransformer(_PPTMixin, VisionTransformer):
    """ViT/DeiT with PPT (class token only). kwargs: those of VisionTransformer plus r,
    pp_loc_list, tau, var_ddof, prop_attn, tau_rescale."""

    def __init__(self, **kwargs):
        ppt, vit = _split_kwargs(dict(kwargs))
        self._check_ppt(vit.get("depth", 12), **ppt)
        super().__init__(**vit)
        self._build_ppt(self.embed_dim, len(self.blocks), vit.get("num_heads", 12), vit.get("mlp_ratio", 4.0),
                        vit.get("qkv_bias", True), vit.get("drop_path_rate", 0.0), **ppt)


class PPTVisionTransformerDistilled(_PPTMixin, VisionTransformerDistilled):
    """DeiT with distillation token and PPT (CLS and DIST are protected in both branches)."""

    def __init__(self, **kwargs):
        ppt, vit = _split_kwargs(dict(kwargs))
        self._check_ppt(vit.get("depth", 12), **ppt)
        super().__init__(**vit)
        self._build_ppt(self.embed_dim, len(self.blocks), vit.get("num_heads", 12), vit.get("mlp_ratio", 4.0),
                        vit.get("qkv_bias", True), vit.get("drop_path_rate", 0.0), **ppt)


def _create(size, distilled=False, **kwargs):
    embed_dim, num_heads = _SIZES[size]
    cls = PPTVisionTransformerDistilled if distilled else PPTVisionTransformer
    return cls(patch_size=16, embed_dim=embed_dim, depth=12, num_heads=num_heads, **kwargs)


@register_model
def ppt_deit_tiny_patch16_224(**kwargs):
    """DeiT-Ti/16 with PPT (kwargs: r, pp_loc_list, tau, var_ddof, prop_attn, tau_rescale, num_classes, ...)."""
    return _create("tiny", **kwargs)


@register_model
def ppt_deit_small_patch16_224(**kwargs):
    """DeiT-S/16 with PPT (defaults: r=50 at blocks [3, 6, 9], tau 7e-5)."""
    return _create("small", **kwargs)


@register_model
def ppt_deit_base_patch16_224(**kwargs):
    """DeiT-B/16 with PPT."""
    return _create("base", **kwargs)


@register_model
def ppt_deit_small_distilled_patch16_224(**kwargs):
    """DeiT-S/16 with distillation token and PPT."""
    return _create("small", distilled=True, **kwargs)


@register_model
def ppt_deit_tiny_distilled_patch16_224(**kwargs):
    """DeiT-Ti/16 with distillation token and PPT."""
    return _create("tiny", distilled=True, **kwargs)


@register_model
def ppt_deit_base_distilled_patch16_224(**kwargs):
    """DeiT-B/16 with distillation token and PPT."""
    return _create("base", distilled=True, **kwargs)


@register_model
def ppt_vit_custom(distilled=False, **kwargs):
    """Any-shape ViT with PPT (kwargs: img_size, patch_size, embed_dim, depth, num_heads, ... and the PPT keys)."""
    cls = PPTVisionTransformerDistilled if distilled else PPTVisionTransformer
    return cls(**kwargs)
