"""IFT network (PyTorch twin of ``ms_models.ift.model``; see its docstring for the data flow)."""
import math

import torch
import torch.nn as nn

from ..registry import register_model
from .fgps import BACKENDS, FGPS
from .loss import mu_law
from .scf import SelfCrossFusion, patchify
from .transformer import ContextAwareTransformerBlock, PatchEmbed, SpatialAttentionModule, conv2d, patch_unembed

INPUT_ORDERS = ("hdr_first", "ldr_first")
SEARCH_ON = ("exposure_aligned_input", "features")
SAT_MARGIN = 0.95 ** 2.2


class IFT(nn.Module):
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
        self.layers = nn.ModuleList([
            ContextAwareTransformerBlock(embed_dim, depths[i], num_heads[i], window_size, mlp_ratio,
                                         dpr[sum(depths[:i]):sum(depths[:i + 1])]) for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv2d(embed_dim, embed_dim, 3, 1)
        self.conv_last = conv2d(embed_dim, 3, 3, 1)

    def split(self, x):
        if self.input_order == "hdr_first":
            return x[:, :3], x[:, 3:]
        return x[:, 3:], x[:, :3]

    def saturation_level(self, x):
        hdr, ldr = self.split(x)
        w = ((ldr > 0.05) & (ldr < 0.95)).to(hdr.dtype)
        num = (hdr * w).sum(dim=(1, 2, 3))
        den = (torch.pow(torch.clamp(ldr, min=0.0), 2.2) * w).sum(dim=(1, 2, 3))
        return num / torch.clamp(den, min=1e-12)

    def descriptors(self, x, f, clip=None):
        if self.search_on == "features":
            d = patchify(f, self.patch_size)
        else:
            hdr = torch.clamp(self.split(x)[0], min=0.0)
            if clip is not None:
                hdr = torch.minimum(hdr, clip.reshape(-1, 1, 1, 1))
            d = patchify(mu_law(hdr), self.patch_size)
        d = d.reshape(d.shape[0], d.shape[1], -1)
        mean = d.mean(dim=-1, keepdim=True)
        if self.search_on == "features" or self.search_level_weight == 0:
            return d - mean
        angle = mean * (math.pi / 2)
        level = torch.cat((torch.cos(angle), torch.sin(angle)), dim=-1) * self.search_level_weight
        return torch.cat((d - mean, level), dim=-1)

    def match(self, x1, x2, x3, f1=None, f2=None, f3=None):
        if self.search_on == "features":
            ref = self.descriptors(x2, f2)
            return self.fgps(ref, self.descriptors(x1, f1)), self.fgps(ref, self.descriptors(x3, f3))
        s1, s2, s3 = self.saturation_level(x1), self.saturation_level(x2), self.saturation_level(x3)
        c1 = torch.minimum(s1, s2) * SAT_MARGIN
        c3 = torch.minimum(s3, s2) * SAT_MARGIN
        idx1 = self.fgps(self.descriptors(x2, f2, c1), self.descriptors(x1, f1, c1))
        idx3 = self.fgps(self.descriptors(x2, f2, c3), self.descriptors(x3, f3, c3))
        return idx1, idx3

    def forward_features(self, x):
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return patch_unembed(self.norm(x), x_size)

    def forward(self, x1, x2, x3):
        f1 = self.conv_f1(x1)
        f2 = self.conv_f2(x2)
        f3 = self.conv_f3(x3)
        if self.align:
            idx1, idx3 = self.match(x1, x2, x3, f1, f2, f3)
            f1 = self.scf_1(f2, f1, idx1)
            f3 = self.scf_3(f2, f3, idx3)
        f1 = f1 * self.att_module_h(f1, f2)
        f3 = f3 * self.att_module_l(f3, f2)
        x = self.conv_first(torch.cat((f1, f2, f3), 1))
        res = self.conv_after_body(self.forward_features(x) + x)
        return torch.sigmoid(self.conv_last(f2 + res))

    @property
    def size_multiple(self):
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
