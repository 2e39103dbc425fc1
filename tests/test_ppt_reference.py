"""PPT against an independent numpy reference (float64, per-image Python loops, written from the spec).

The reference runs a whole ViT/DeiT from a PyTorch-named state dict and compresses tokens with
plain loops: pruning keeps the N - r largest scores (stable order), pooling is ToMe bipartite
matching written token by token. The policy can be forced (``'prune'`` / ``'pool'``) instead of
thresholded, which is how the tests prove that tau = 0 is pure pruning and tau = inf pure merging.
Checked here on the MindSpore model; the parity tests
also check the PyTorch twin at DeiT-S scale.
"""
import math

import mindspore as ms
import numpy as np
import pytest
from scipy.special import erf

import ms_models
from common.weights import convert_state_dict
from ms_models.utils.weights import load_numpy_state, target_shapes

SMALL = dict(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=2, num_classes=5)


def _ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def np_prune(x, size, scores, r):
    keep = np.argsort(-scores, kind="stable")[:len(x) - r]
    sources = [[int(j)] for j in keep]
    return x[keep], size[keep], sources


def np_tome(x, size, metric, r, distill):
    """ToMe on one image, token by token. Returns (x, size, sources list per output token)."""
    n = len(x)
    m = metric / np.linalg.norm(metric, axis=-1, keepdims=True)
    a_tok, b_tok = list(range(0, n, 2)), list(range(1, n, 2))
    best, best_j = [], []
    for i, ti in enumerate(a_tok):
        row = [-math.inf if (i == 0 or (distill and j == 0)) else float(m[ti] @ m[tj]) for j, tj in enumerate(b_tok)]
        jmax = int(np.argmax(row))  # first maximum
        best.append(row[jmax])
        best_j.append(jmax)
    order = sorted(range(len(a_tok)), key=lambda i: (-best[i], i))
    src, unm = order[:r], sorted(order[r:])
    groups_unm = [[a_tok[i]] for i in unm]
    groups_dst = [[b_tok[j]] + [a_tok[i] for i in src if best_j[i] == j] for j in range(len(b_tok))]
    if distill:
        groups = [groups_unm[0], groups_dst[0]] + groups_unm[1:] + groups_dst[1:]
    else:
        groups = groups_unm + groups_dst
    out_x = np.stack([sum(x[t] * size[t] for t in g) / sum(size[t] for t in g) for g in groups])
    out_s = np.array([sum(size[t] for t in g) for g in groups])
    return out_x, out_s, [sorted(g) for g in groups]


def np_ppt_forward(sd, images, *, depth, num_heads, patch_size, r, pp_loc_list, tau=None, policy=None,
                   var_ddof=1, prop_attn=True, distilled=False):
    """Logits (B, K) and per compression block (pool bits, sources, sizes) for each image.

    ``policy``: None (threshold ``tau`` on the score variance), ``'prune'`` or ``'pool'`` (forced).
    """
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    p = 2 if distilled else 1
    logits, traces = [], []
    for img in images.astype(np.float64):
        c_in, hh, ww = img.shape
        g = hh // patch_size
        patches = img.reshape(c_in, g, patch_size, g, patch_size).transpose(1, 3, 0, 2, 4).reshape(g * g, -1)
        w = sd["patch_embed.proj.weight"]
        x = patches @ w.reshape(w.shape[0], -1).T + sd["patch_embed.proj.bias"]
        prefix = [sd["cls_token"][0]] + ([sd["dist_token"][0]] if distilled else [])
        x = np.concatenate(prefix + [x], 0) + sd["pos_embed"][0]
        size = np.ones(len(x))
        compressed, img_trace = False, []
        for i in range(depth):
            pre = f"blocks.{i}."
            n, c = x.shape
            hd = c // num_heads
            h = _ln(x, sd[pre + "norm1.weight"], sd[pre + "norm1.bias"])
            qkv = (h @ sd[pre + "attn.qkv.weight"].T + sd[pre + "attn.qkv.bias"]).reshape(n, 3, num_heads, hd)
            q, k, v = qkv[:, 0].transpose(1, 0, 2), qkv[:, 1].transpose(1, 0, 2), qkv[:, 2].transpose(1, 0, 2)
            logit = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            if compressed and prop_attn:
                logit = logit + np.log(size)[None, None, :]
            attn = _softmax(logit)
            out = (attn @ v).transpose(1, 0, 2).reshape(n, c)
            x = x + out @ sd[pre + "attn.proj.weight"].T + sd[pre + "attn.proj.bias"]
            rr = min(r, (n - p) // 2) if i in pp_loc_list else 0
            if rr > 0:
                s = attn[:, 0, :].sum(0) * np.linalg.norm(v.transpose(1, 0, 2).reshape(n, c), axis=1)
                patch = s[p:] / s[p:].sum()
                scores = np.concatenate([np.full(p, 2.0), patch])
                var = ((patch - patch.mean()) ** 2).sum() / (len(patch) - var_ddof)
                pool = (var < tau) if policy is None else (policy == "pool")
                sz = size if prop_attn else np.ones(n)
                if pool:
                    x, size, src = np_tome(x, sz, k.mean(0), rr, distilled)
                else:
                    x, size, src = np_prune(x, sz, scores, rr)
                img_trace.append((bool(pool), src, size.copy(), float(var)))
                compressed = True
            h = _ln(x, sd[pre + "norm2.weight"], sd[pre + "norm2.bias"])
            h = h @ sd[pre + "mlp.fc1.weight"].T + sd[pre + "mlp.fc1.bias"]
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            x = x + h @ sd[pre + "mlp.fc2.weight"].T + sd[pre + "mlp.fc2.bias"]
        x = _ln(x, sd["norm.weight"], sd["norm.bias"])
        out = x[0] @ sd["head.weight"].T + sd["head.bias"]
        if distilled:
            out = (out + x[1] @ sd["head_dist.weight"].T + sd["head_dist.bias"]) / 2
        logits.append(out)
        traces.append(img_trace)
    return np.stack(logits), traces


def random_state(shapes, seed):
    """timm-like random weights for a PyTorch-named shape dict (numpy-seeded)."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shp in shapes.items():
        if k.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            sd[k] = 1.0 + 0.1 * rng.standard_normal(shp)
        elif k.endswith(("token", "pos_embed")):
            sd[k] = 0.5 * rng.standard_normal(shp)
        elif k.endswith("bias"):
            sd[k] = 0.02 * rng.standard_normal(shp)
        else:
            fan_in = int(np.prod(shp[1:])) if len(shp) > 1 else 1
            sd[k] = rng.standard_normal(shp) / math.sqrt(fan_in)
    return {k: v.astype(np.float32) for k, v in sd.items()}


def pt_names(net):
    """PyTorch-style shapes of a MindSpore net (gamma/beta -> weight/bias)."""
    return {k.replace(".gamma", ".weight").replace(".beta", ".bias"): s for k, s in target_shapes(net).items()}


def build_ms(sd, distilled=False, **ppt):
    net = ms_models.create_model("ppt_vit_custom", distilled=distilled, **SMALL, **ppt)
    load_numpy_state(net, convert_state_dict(sd, target_shapes(net), "pt2ms"), strict=True)
    net.set_train(False)
    net.set_trace(True)
    return net


def ms_trace_as_lists(trace, batch):
    """MindSpore trace tuple -> per image [(pool, sources, sizes)] like the numpy reference."""
    out = [[] for _ in range(batch)]
    for k in range(0, len(trace), 4):
        pool, _, src, size = (t.asnumpy() for t in trace[k:k + 4])
        for b in range(batch):
            out[b].append((bool(pool[b] > 0.5), [sorted(np.nonzero(row)[0].tolist()) for row in src[b]], size[b]))
    return out


def assert_same_decisions(got, ref):
    for b, (g_img, r_img) in enumerate(zip(got, ref)):
        assert len(g_img) == len(r_img)
        for layer, (g, r) in enumerate(zip(g_img, r_img)):
            assert g[0] == r[0], f"image {b} block {layer}: pool bit {g[0]} vs reference {r[0]}"
            assert g[1] == r[1], f"image {b} block {layer}: kept/merged token sets differ"
            np.testing.assert_array_equal(g[2], r[2])


def _setup(distilled, seed=0, batch=4):
    shapes = pt_names(ms_models.create_model("ppt_vit_custom", distilled=distilled, r=0, pp_loc_list=[], **SMALL))
    sd = random_state(shapes, seed)
    x = np.random.default_rng(seed + 100).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    return sd, x


CASES = [(0.0, "prune"), (float("inf"), "pool")]


@pytest.mark.parametrize("distilled", [False, True])
@pytest.mark.parametrize("tau,policy", CASES)
def test_extreme_tau_equals_forced_branch(distilled, tau, policy):
    """tau = 0 is pure pruning and tau = inf pure ToMe merging (reference with the policy forced)."""
    sd, x = _setup(distilled)
    ppt = dict(r=8, pp_loc_list=[1, 2])
    ref, ref_tr = np_ppt_forward(sd, x, depth=4, num_heads=2, patch_size=4, policy=policy, distilled=distilled,
                                 **ppt)
    net = build_ms(sd, distilled=distilled, tau=tau, **ppt)
    logits, trace = net(ms.Tensor(x))
    got = ms_trace_as_lists(trace, len(x))
    assert_same_decisions(got, ref_tr)
    assert all(g[0] == (policy == "pool") for img in got for g in img)
    diff = np.abs(logits.asnumpy() - ref).max()
    print(f"[ppt] tau={tau} distilled={distilled}: max |logits - numpy| {diff:.2e}")
    assert diff <= 1e-4 * max(1.0, np.abs(ref).max())


def test_adaptive_policy_mixed_batch():
    """A tau between the observed variances gives a mixed batch (the compiled graph is checked against
    this PyNative network in test_ppt_export.py and test_ppt_task.py)."""
    sd, x = _setup(False, seed=3, batch=6)
    ppt = dict(r=8, pp_loc_list=[1, 2])
    _, probe = np_ppt_forward(sd, x, depth=4, num_heads=2, patch_size=4, policy="prune", **ppt)
    first = sorted(img[0][3] for img in probe)
    tau = float(np.sqrt(first[2] * first[3]))  # geometric midpoint: half the images pool at block 1
    ref, ref_tr = np_ppt_forward(sd, x, depth=4, num_heads=2, patch_size=4, tau=tau, **ppt)
    bits = [[layer[0] for layer in img] for img in ref_tr]
    assert any(b[0] for b in bits) and not all(b[0] for b in bits)
    net = build_ms(sd, tau=tau, **ppt)
    logits, trace = net(ms.Tensor(x))
    assert_same_decisions(ms_trace_as_lists(trace, len(x)), ref_tr)
    diff = np.abs(logits.asnumpy() - ref).max()
    print(f"[ppt] mixed batch bits {bits}: max |logits - numpy| {diff:.2e}")
    assert diff <= 1e-4 * max(1.0, np.abs(ref).max())


def test_var_ddof_and_prop_attn_off():
    """var_ddof=0 shifts the variance by (n-1)/n; prop_attn off resets the sizes at each compression."""
    sd, x = _setup(False, seed=5, batch=3)
    ppt = dict(r=8, pp_loc_list=[1, 2])
    _, probe = np_ppt_forward(sd, x, depth=4, num_heads=2, patch_size=4, policy="prune", **ppt)
    v1 = probe[0][0][3]
    _, probe0 = np_ppt_forward(sd, x, depth=4, num_heads=2, patch_size=4, policy="prune", var_ddof=0, **ppt)
    np.testing.assert_allclose(probe0[0][0][3], v1 * 63 / 64, rtol=1e-12)
    tau = v1 * (1 - 0.5 / 64)  # ddof 1 -> prune (var >= tau); ddof 0 -> pool (var * 63/64 < tau)
    for ddof, pooled in ((1, False), (0, True)):
        ref, ref_tr = np_ppt_forward(sd, x[:1], depth=4, num_heads=2, patch_size=4, tau=tau, var_ddof=ddof,
                                     prop_attn=False, **ppt)
        assert ref_tr[0][0][0] is pooled
        net = build_ms(sd, tau=tau, var_ddof=ddof, prop_attn=False, **ppt)
        logits, trace = net(ms.Tensor(x[:1]))
        assert_same_decisions(ms_trace_as_lists(trace, 1), ref_tr)
        assert np.abs(logits.asnumpy() - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
