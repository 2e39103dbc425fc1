"""IFT network (MindSpore): HDR-Transformer shell with FGPS + SCF inserted before the fusion.

Inputs: three frames x1, x2, x3 (B, 6, H, W), x2 the reference; each is the gamma-mapped HDR-domain
image L^2.2 / t and the LDR image L, in ``input_order`` ('hdr_first': channels 0-2 HDR-domain,
3-5 LDR, as HDR-Transformer; 'ldr_first': the AHDRNet order). H and W must be multiples of
``window_size`` and ``patch_size``. Output: linear HDR (B, 3, H, W) in (0, 1) (sigmoid).

    f_i = conv_f_i(x_i)
    idx_i = FGPS(desc(x2 or f2), desc(x_i or f_i))          i = 1, 3   (``align``)
    f_i = SCF_i(f2, f_i, idx_i)
    f_i = f_i * att(f_i, f2)                                 AHDRNet spatial attention
    x = conv_first([f1, f2, f3]);  res = conv_after_body(CTBs(x) + x)
    out = sigmoid(conv_last(f2 + res))

Search descriptors (``search_on``): 'exposure_aligned_input' compares mu-law(min(L^2.2 / t, c)) of
the two frames, where c is just below the saturation level of the longer exposure of the pair
(1/t, estimated per image as sum(H) / sum(L^2.2) over unsaturated pixels), so both descriptors
cover the range both frames record; 'features' compares the conv_f features. Descriptors are
centred per patch, so cosine similarity is normalised cross-correlation; for the input descriptors
the patch level (mean mu-law value m) is appended as search_level_weight * (cos(pi m / 2), sin(pi m / 2)),
because a flat patch (saturated, uniform) is the zero vector after centring and would match an
arbitrary patch (its similarity to every patch is 0).

``align=False`` is the plain HDR-Transformer; ``fgps_backend='none'`` keeps SCF but fuses every
reference patch with the co-located supporting patch only (the window-only baseline).
"""
import math

from mindspore import nn, ops

from ..registry import register_model
from .fgps import BACKENDS, FGPS
from .loss import mu_law
from .scf import SelfCrossFusion, patchify
from .transformer import ContextAwareTransformerBlock, PatchEmbed, SpatialAttentionModule, conv2d, patch_unembed

INPUT_ORDERS = ("hdr_first", "ldr_first")
SEARCH_ON = ("exposure_aligned_input", "features")
SAT_MARGIN = 0.95 ** 2.2  # clip below the HDR value of L = 0.95


class IFT(nn.Cell):
    """See the module docstring. Sizes default to HDR-Transformer's (embed 60, depths 6-6-6, heads 6)."""

    def __init__(self, in_chans=6, embed_dim=60, depths=(6, 6, 6), num_heads=(6, 6, 6), window_size=8,
                 mlp_ratio=2.0, drop_path_rate=0.1, align=True, patch_size=8, k=4, fgps_backend="exact",
                 n_hashes=8, n_buckets=16, chunk_size=64, lsh_seed=0, search_on="exposure_aligned_input",
                 scf_heads=6, scf_mlp_ratio=2.0, input_order="hdr_first", search_level_weight=0.5):
        super().__init__()
        _check_choice("input_order", input_order, INPUT_ORDERS)
        _check_choice("search_on", search_on, SEARCH_ON)
        _check_choice("fgps_backend", fgps_backend, BACKENDS)
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} must have the same length")
        self.align, self.patch_size, self.window_size = bool(align), int(patch_size), int(window_size)
        self.search_on, self.input_order = search_on, input_order
        if search_level_weight < 0:
            raise ValueError(f"search_level_weight must be >= 0, got {search_level_weight}")
        self.search_level_weight = float(search_level_weight)
        self.conv_f1 = conv2d(in_chans, embed_dim, 3, 1)
        self.conv_f2 = conv2d(in_chans, embed_dim, 3, 1)
        self.conv_f3 = conv2d(in_chans, embed_dim, 3, 1)
        if self.align:
            dim = 3 * patch_size ** 2 if search_on == "exposure_aligned_input" else embed_dim * patch_size ** 2
            if search_on == "exposure_aligned_input" and self.search_level_weight > 0:
                dim += 2
            self.fgps = FGPS(k, fgps_backend, dim, n_hashes, n_buckets, chunk_size, lsh_seed)
            self.scf_1 = SelfCrossFusion(embed_dim, scf_heads, patch_size, scf_mlp_ratio)
            self.scf_3 = SelfCrossFusion(embed_dim, scf_heads, patch_size, scf_mlp_ratio)
        self.att_module_l = SpatialAttentionModule(embed_dim)
        self.att_module_h = SpatialAttentionModule(embed_dim)
        self.conv_first = conv2d(embed_dim * 3, embed_dim, 3, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=True)
        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.CellList([
            ContextAwareTransformerBlock(embed_dim, depths[i], num_heads[i], window_size, mlp_ratio,
                                         dpr[sum(depths[:i]):sum(depths[:i + 1])]) for i in range(len(depths))])
        self.norm = nn.LayerNorm((embed_dim,), epsilon=1e-5)
        self.conv_after_body = conv2d(embed_dim, embed_dim, 3, 1)
        self.conv_last = conv2d(embed_dim, 3, 3, 1)

    def split(self, x):
        """(HDR-domain channels, LDR channels) of a (B, 6, H, W) input."""
        if self.input_order == "hdr_first":
            return x[:, :3], x[:, 3:]
        return x[:, 3:], x[:, :3]

    def saturation_level(self, x):
        """HDR-domain value 1/t of a frame, (B,): sum(H w) / sum(L^2.2 w) over pixels with
        0.05 < L < 0.95 (H = L^2.2 / t there; the ones used as test padding are excluded)."""
        hdr, ldr = self.split(x)
        w = ops.logical_and(ldr > 0.05, ldr < 0.95).astype(hdr.dtype)
        num = (hdr * w).sum(axis=(1, 2, 3))
        den = (ops.pow(ops.maximum(ldr, 0.0), 2.2) * w).sum(axis=(1, 2, 3))
        return num / ops.maximum(den, 1e-12)

    def descriptors(self, x, f, clip=None):
        """Search descriptors (B, N, D), each centred (cosine of centred vectors = normalised
        cross-correlation): the features, or mu-law of the HDR-domain input channels clipped at
        ``clip`` (B,) (the range both compared frames represent)."""
        if self.search_on == "features":
            d = patchify(f, self.patch_size)
        else:
            hdr = ops.maximum(self.split(x)[0], 0.0)
            if clip is not None:
                hdr = ops.minimum(hdr, ops.reshape(clip, (-1, 1, 1, 1)))
            d = patchify(mu_law(hdr), self.patch_size)
        b, n = d.shape[0], d.shape[1]
        d = ops.reshape(d, (b, n, -1))
        mean = d.mean(axis=-1, keep_dims=True)
        if self.search_on == "features" or self.search_level_weight == 0:
            return d - mean
        # the patch level (mean, in [0, 1] mu-law units) on a quarter circle, so that flat patches
        # (zero after centring) match patches of their own level instead of an arbitrary one
        angle = mean * (math.pi / 2)
        level = ops.concat((ops.cos(angle), ops.sin(angle)), axis=-1) * self.search_level_weight
        return ops.concat((d - mean, level), axis=-1)

    def match(self, x1, x2, x3, f1=None, f2=None, f3=None):
        """FGPS indices (B, N, k) of frames 1 and 3 for every reference patch."""
        if self.search_on == "features":
            ref = self.descriptors(x2, f2)
            return self.fgps(ref, self.descriptors(x1, f1)), self.fgps(ref, self.descriptors(x3, f3))
        s1, s2, s3 = self.saturation_level(x1), self.saturation_level(x2), self.saturation_level(x3)
        c1 = ops.minimum(s1, s2) * SAT_MARGIN
        c3 = ops.minimum(s3, s2) * SAT_MARGIN
        idx1 = self.fgps(self.descriptors(x2, f2, c1), self.descriptors(x1, f1, c1))
        idx3 = self.fgps(self.descriptors(x2, f2, c3), self.descriptors(x3, f3, c3))
        return idx1, idx3

    def forward_features(self, x):
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return patch_unembed(self.norm(x), x_size)

    def construct(self, x1, x2, x3):
        f1 = self.conv_f1(x1)
        f2 = self.conv_f2(x2)
        f3 = self.conv_f3(x3)
        if self.align:
            idx1, idx3 = self.match(x1, x2, x3, f1, f2, f3)
            f1 = self.scf_1(f2, f1, idx1)
            f3 = self.scf_3(f2, f3, idx3)
        f1 = f1 * self.att_module_h(f1, f2)
        f3 = f3 * self.att_module_l(f3, f2)
        x = self.conv_first(ops.concat((f1, f2, f3), 1))
        res = self.conv_after_body(self.forward_features(x) + x)
        return ops.sigmoid(self.conv_last(f2 + res))

    @property
    def size_multiple(self):
        """H and W of the input must be multiples of this."""
        p = self.patch_size if self.align else 1
        return p * self.window_size // math.gcd(p, self.window_size)


def _check_choice(key, value, choices):
    if value not in choices:
        raise ValueError(f"IFT {key} must be one of {choices}, got '{value}'")


@register_model
def ift(**kwargs):
    """IFT: HDR-Transformer-size shell (embed 60, depths 6-6-6) with FGPS (p 8, k 4) + SCF."""
    return IFT(**kwargs)


@register_model
def hdr_transformer(**kwargs):
    """The shell alone (no FGPS/SCF): HDR-Transformer's layout."""
    kwargs["align"] = False
    return IFT(**kwargs)
