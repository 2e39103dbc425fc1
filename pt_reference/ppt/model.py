"""PPT (arXiv 2310.01812) on timm ViT/DeiT: the PyTorch twin of ``ms_models.ppt.model``.

``apply_patch(model, r, pp_loc_list, tau, ...)`` swaps the classes of a timm ``VisionTransformer``
and its ``Block``s in place, as the official code does (the parameters are untouched). The
default ``policy_impl='split'`` follows the official data flow: the batch is split by index into a
pooling and a pruning sub-batch, each branch runs on its images only, and the results are
scattered back. ``'mask'`` computes both branches for the whole batch and selects per image (the
MindSpore form); both give identical tokens.

Sorting uses stable sorts and ``argmax`` (first maximum), so ties resolve by the lower token index
in both frameworks. Shapes: x (B, N, C), size (B, N, 1), scores (B, N), metric (B, N, d).
"""
import math

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer

PROTECTED_SCORE = 2.0


def token_schedule(num_tokens, depth, r, pp_loc_list, num_prefix=1):
    """Per block ``(tokens seen by attention, tokens removed)``; r is clamped to (N - prefix) // 2."""
    out, n = [], num_tokens
    for i in range(depth):
        rr = min(int(r), (n - num_prefix) // 2) if i in pp_loc_list else 0
        out.append((n, max(rr, 0)))
        n -= max(rr, 0)
    return out


def effective_tau(tau, num_patches, rescale):
    """tau, or tau * (196 / num_patches)^2 with ``rescale``."""
    return float(tau) * (196.0 / num_patches) ** 2 if rescale else float(tau)


def importance_scores(probs, v, num_prefix):
    """ATS significance (B, N): CLS attention summed over heads times ||v_j||, normalised over patches."""
    b, h, n, d = v.shape
    v_norm = torch.linalg.norm(v.transpose(1, 2).reshape(b, n, h * d), ord=2, dim=2)
    s = probs[:, :, 0].sum(dim=1) * v_norm
    patch = s[:, num_prefix:]
    patch = patch / patch.sum(dim=1, keepdim=True)
    return torch.cat([torch.full((b, num_prefix), PROTECTED_SCORE, dtype=patch.dtype), patch], dim=1)


def prune(x, size, scores, r):
    """Keep the N - r highest scores (stable descending order). Returns (x, size, kept index)."""
    keep = torch.sort(scores, dim=1, descending=True, stable=True)[1][:, :x.shape[1] - r]
    return (x.gather(1, keep[..., None].expand(-1, -1, x.shape[2])), size.gather(1, keep[..., None]), keep)


def bipartite_match(metric, r, distill_token):
    """ToMe matching: (unmerged A index (B, Na-r) sorted, source A index (B, r), destination B index (B, r))."""
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, ::2], metric[:, 1::2]
        sim = a @ b.transpose(1, 2)
        sim[:, 0, :] = -math.inf
        if distill_token:
            sim[:, :, 0] = -math.inf
        node_max = sim.max(dim=-1)[0]
        node_idx = sim.argmax(dim=-1)
        edge = torch.sort(node_max, dim=-1, descending=True, stable=True)[1]
        unm_idx = edge[:, r:].sort(dim=1)[0]
        src_idx = edge[:, :r]
        dst_idx = node_idx.gather(1, src_idx)
    return unm_idx, src_idx, dst_idx


def _interleave(unm, dst, distill_token):
    if distill_token:
        return torch.cat([unm[:, :1], dst[:, :1], unm[:, 1:], dst[:, 1:]], dim=1)
    return torch.cat([unm, dst], dim=1)


def merge_weighted(x, size, unm_idx, src_idx, dst_idx, distill_token):
    """Size-weighted mean merge (scatter-add of x*size and size, then divide)."""
    def merge(t):
        c = t.shape[2]
        ta, tb = t[:, ::2], t[:, 1::2]
        unm = ta.gather(1, unm_idx[..., None].expand(-1, -1, c))
        src = ta.gather(1, src_idx[..., None].expand(-1, -1, c))
        dst = tb.scatter_reduce(1, dst_idx[..., None].expand(-1, -1, c), src, reduce="sum")
        return _interleave(unm, dst, distill_token)

    num, den = merge(x * size), merge(size)
    return num / den, den


def merge_sources(n, unm_idx, src_idx, dst_idx, distill_token):
    """(B, N-r, n) source map: 1 where input token j went into output token t."""
    eye = torch.eye(n)
    bsz = unm_idx.shape[0]
    even, odd = eye[0::2], eye[1::2]
    unm = even[unm_idx]
    dst = odd[None].repeat(bsz, 1, 1)
    dst = dst.scatter_add(1, dst_idx[..., None].expand(-1, -1, n), even[src_idx])
    return _interleave(unm, dst, distill_token)


def score_variance(scores, num_prefix, ddof):
    """Variance of the patch scores per image, denominator (N_patch - ddof)."""
    return torch.var(scores[:, num_prefix:], dim=1, correction=ddof)


class PPTBlock(Block):
    """timm ``Block`` with proportional attention and adaptive compression (set by ``apply_patch``)."""

    def _attention(self, x, size, need_probs):
        """Attention with the log-size key bias; (out, probs, v, k). Blocks that do not compress use
        the fused kernel (probs None), as timm's Attention does."""
        attn = self.attn
        bsz, n, _ = x.shape
        h = self.norm1(x)
        qkv = attn.qkv(h).reshape(bsz, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        bias = size.log()[:, None, None, :, 0] if self.ppt_use_size else None
        if need_probs:
            logits = (q * attn.scale) @ k.transpose(-2, -1)
            if bias is not None:
                logits = logits + bias
            probs = attn.attn_drop(logits.softmax(dim=-1))
            out = probs @ v
        else:
            probs = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                 dropout_p=attn.attn_drop.p if self.training else 0.0)
        out = out.transpose(1, 2).reshape(bsz, n, attn.num_heads * attn.head_dim)
        out = attn.proj_drop(attn.proj(attn.norm(out)))
        return out, probs, v, k

    def _branches(self, x, size, scores, metric, pool, r, p, trace):
        """Both branches on the images selected by ``pool`` (split) or on all (mask)."""
        distill = p == 2
        n = x.shape[1]
        out_x = x.new_zeros(x.shape[0], n - r, x.shape[2])
        out_s = size.new_ones(x.shape[0], n - r, 1)
        out_src = x.new_zeros(x.shape[0], n - r, n) if trace else None
        if self.ppt_policy_impl == "mask":
            groups = [(torch.arange(x.shape[0]), "pool"), (torch.arange(x.shape[0]), "prune")]
        else:
            groups = [(torch.nonzero(pool).squeeze(-1), "pool"), (torch.nonzero(~pool).squeeze(-1), "prune")]
        results = {}
        for idx, kind in groups:
            if idx.numel() == 0:
                continue
            if kind == "pool":
                unm, src, dst = bipartite_match(metric[idx], r, distill)
                bx, bs = merge_weighted(x[idx], size[idx], unm, src, dst, distill)
                bsrc = merge_sources(n, unm, src, dst, distill) if trace else None
            else:
                bx, bs, keep = prune(x[idx], size[idx], scores[idx], r)
                bsrc = torch.eye(n)[keep] if trace else None
            results[kind] = (idx, bx, bs, bsrc)
        if self.ppt_policy_impl == "mask":
            sel = pool[:, None, None]
            (_, px, ps, psrc), (_, qx, qs, qsrc) = results["pool"], results["prune"]
            src = torch.where(sel, psrc, qsrc) if trace else None
            return torch.where(sel, px, qx), torch.where(sel, ps, qs), src
        for idx, bx, bs, bsrc in results.values():
            out_x[idx], out_s[idx] = bx, bs
            if trace:
                out_src[idx] = bsrc
        return out_x, out_s, out_src

    def ppt_forward(self, x, size):
        """(x, size) -> (x, size, trace); trace is () or (pool bits, score variance, source map, sizes)."""
        if not self.ppt_prop_attn:
            size = torch.ones_like(size)
        out, probs, v, k = self._attention(x, size, self.ppt_r > 0 or not self.ppt_fused_attn)
        x = x + self.drop_path1(self.ls1(out))
        trace = ()
        r, p = self.ppt_r, self.ppt_num_prefix
        if r > 0:
            with torch.no_grad():
                scores = importance_scores(probs, v, p)
                var = score_variance(scores, p, self.ppt_var_ddof)
                pool = var < self.ppt_tau
            x, size, src = self._branches(x, size, scores, k.mean(dim=1), pool, r, p, self.ppt_trace)
            if self.ppt_trace:
                trace = (pool.to(x.dtype), var, src, size[:, :, 0])
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x, size, trace


class PPTMixin:
    """Forward of a patched timm ViT: blocks run with token sizes; ``ppt_trace`` adds the trace."""

    def forward_tokens(self, x):
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
        size = torch.ones(x.shape[0], x.shape[1], 1, dtype=x.dtype)
        trace = ()
        for blk in self.blocks:
            x, size, tr = blk.ppt_forward(x, size)
            trace = trace + tr
        return self.norm(x), trace

    def forward_features(self, x, *args, **kwargs):
        return self.forward_tokens(x)[0]

    def forward(self, x):
        tokens, trace = self.forward_tokens(x)
        logits = self.forward_head(tokens)
        return (logits, trace) if self.ppt_trace else logits

    def set_trace(self, enable=True):
        self.ppt_trace = bool(enable)
        for blk in self.blocks:
            blk.ppt_trace = bool(enable)


_CLASSES = {}


def _ppt_class(cls):
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"PPT{cls.__name__}", (PPTMixin, cls), {})
    return _CLASSES[cls]


def apply_patch(model, r=50, pp_loc_list=(3, 6, 9), tau=7e-5, var_ddof=1, prop_attn=True, tau_rescale=False,
                policy_impl="split", fused_attn=True):
    """Turn a timm ``VisionTransformer`` (or DeiT distilled) into a PPT model in place and return it.

    ``fused_attn``: blocks that do not compress use ``F.scaled_dot_product_attention`` (as timm does);
    False computes every attention explicitly (e.g. for a MAC count of the executed matmuls).
    """
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"apply_patch expects a timm VisionTransformer, got {type(model).__name__}")
    if policy_impl not in ("split", "mask"):
        raise ValueError(f"policy_impl must be 'split' or 'mask', got {policy_impl!r}")
    if var_ddof not in (0, 1):
        raise ValueError(f"var_ddof must be 0 or 1, got {var_ddof}")
    depth = len(model.blocks)
    bad = [i for i in pp_loc_list if not 0 <= int(i) < depth]
    if bad:
        raise ValueError(f"pp_loc_list {list(pp_loc_list)}: block indices {bad} outside 0..{depth - 1}")
    p = model.num_prefix_tokens
    if not model.has_class_token or p not in (1, 2):
        raise ValueError("apply_patch needs a class token (and at most a distillation token)")
    locs = tuple(sorted(int(i) for i in pp_loc_list))
    num_patches = model.patch_embed.num_patches
    tau = effective_tau(tau, num_patches, tau_rescale)
    schedule = token_schedule(num_patches + p, depth, r, locs, p)
    model.__class__ = _ppt_class(type(model) if not isinstance(model, PPTMixin) else type(model).__mro__[2])
    model.ppt_trace = False
    model.token_schedule = schedule
    model.ppt_r, model.ppt_pp_loc_list = int(r), locs
    compressed = False
    for blk, (_, rr) in zip(model.blocks, schedule):
        blk.__class__ = PPTBlock
        blk.ppt_r, blk.ppt_tau, blk.ppt_var_ddof, blk.ppt_num_prefix = rr, tau, int(var_ddof), p
        blk.ppt_prop_attn, blk.ppt_policy_impl, blk.ppt_trace = bool(prop_attn), policy_impl, False
        blk.ppt_use_size = compressed and bool(prop_attn)
        blk.ppt_fused_attn = bool(fused_attn)
        compressed = compressed or rr > 0
    return model


PPT_KEYS = ("r", "pp_loc_list", "tau", "var_ddof", "prop_attn", "tau_rescale", "policy_impl")


def _build(timm_name, **kwargs):
    import timm
    ppt = {k: kwargs.pop(k) for k in PPT_KEYS if k in kwargs}
    return apply_patch(timm.create_model(timm_name, pretrained=False, **kwargs), **ppt)


def _register():
    from ..registry import register_model
    for size in ("tiny", "small", "base"):
        for distilled in ("", "_distilled"):
            timm_name = f"deit_{size}{distilled}_patch16_224"

            def build(_name=timm_name, **kwargs):
                return _build(_name, **kwargs)

            build.__name__ = f"ppt_{timm_name}"
            build.__doc__ = f"timm ``{timm_name}`` patched with PPT (kwargs: {', '.join(PPT_KEYS)} and timm's)."
            register_model(build)

    @register_model
    def ppt_vit_custom(distilled=False, **kwargs):
        """Any-shape timm ViT (img_size, patch_size, embed_dim, depth, num_heads, ...) with PPT."""
        from timm.models.deit import VisionTransformerDistilled
        ppt = {k: kwargs.pop(k) for k in PPT_KEYS if k in kwargs}
        cls = VisionTransformerDistilled if distilled else VisionTransformer
        return apply_patch(cls(**kwargs), **ppt)


_register()
