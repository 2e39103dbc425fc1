"""(Mirror of ms_models.ppt.macs.) Analytic multiply-accumulate count of a ViT/DeiT with PPT (pure Python, batch 1).

Counted, as torchprofile's ``profile_macs`` counts them: the patch-embedding convolution, every
linear layer (qkv, proj, fc1, fc2, head, head_dist), the two attention matmuls (q k^T and A v) and,
for images that pool, ToMe's similarity matmul between the A and B halves of the head-mean keys.
Not counted: layer norms, softmax, GELU, element-wise products (the attention scale, x * size),
norms and sorting; torchprofile adds the layer norms and element-wise products, about 0.1 % more.
The paper reports these MACs as "GFLOPs".
"""
from .model import token_schedule


def ppt_macs(embed_dim, depth, num_heads, mlp_ratio=4.0, img_size=224, patch_size=16, in_chans=3, num_classes=1000,
             num_prefix=1, r=0, pp_loc_list=(), pooled=None):
    """MACs of one image: ``{'total', 'patch_embed', 'blocks', 'head', 'matching', 'tokens'}``.

    ``pooled``: one bool per compression block (default all False, i.e. pruning); a pooling block
    adds its ToMe similarity matmul ((N+1)//2 x N//2 x head_dim). ``tokens`` lists
    (attention tokens, MLP tokens) per block.
    """
    c, hidden = int(embed_dim), int(embed_dim * mlp_ratio)
    grid = img_size // patch_size
    num_patches = grid * grid
    patch_embed = num_patches * c * in_chans * patch_size * patch_size
    schedule = token_schedule(num_patches + num_prefix, depth, r, tuple(pp_loc_list), num_prefix)
    compress = [i for i, (_, rr) in enumerate(schedule) if rr > 0]
    pooled = [False] * len(compress) if pooled is None else list(pooled)
    if len(pooled) != len(compress):
        raise ValueError(f"pooled has {len(pooled)} entries, expected one per compression block {compress}")
    blocks = matching = 0
    tokens = []
    for i, (n, rr) in enumerate(schedule):
        m = n - rr
        blocks += n * c * 3 * c + 2 * n * n * c + n * c * c + 2 * m * c * hidden
        if rr and pooled[compress.index(i)]:
            matching += ((n + 1) // 2) * (n // 2) * (c // num_heads)
        tokens.append((n, m))
    head = c * num_classes * (2 if num_prefix == 2 else 1)
    total = patch_embed + blocks + head + matching
    return {"total": total, "patch_embed": patch_embed, "blocks": blocks, "head": head, "matching": matching,
            "tokens": tokens}


DEIT = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}


def deit_macs(size, r=0, pp_loc_list=(3, 6, 9), distilled=False, pooled=None):
    """``ppt_macs`` of DeiT-{tiny, small, base}/16 at 224."""
    dim, heads = DEIT[size]
    return ppt_macs(dim, 12, heads, num_prefix=2 if distilled else 1, r=r,
                    pp_loc_list=pp_loc_list if r else (), pooled=pooled)
