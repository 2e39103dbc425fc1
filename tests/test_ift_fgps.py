"""FGPS on synthetic exposure stacks under pure translation: for every reference patch whose true
source lies inside the supporting frame, the top-1 match must be that patch (shifts are multiples of
the patch size, 16-40 px, so the true patch is well defined).

Patches are scored when they carry texture in the range both frames represent (max - min of the
mu-law clipped reference patch > 0.05): a patch that is flat after clipping (saturated in the longer
exposure) matches every other flat patch equally well, and no search can identify it; the share of
such patches and the accuracy over all patches are printed. The exposure-normalisation (clip level
from the estimated 1/t) is the model's own. The hashing backend's accuracy on the same windows is
measured by ``python -m ms_models.ift.demo --fgps-only`` (docs/ift.md). Over all patches, a match
counts when it is the true patch or has exactly the true patch's pixels (a second test)."""
import mindspore as ms
import numpy as np
import pytest

from common.data.demo_classification import load_photo
from common.data.hdr_patches import patchify
from common.data.hdr_synthetic import TRAIN_PHOTOS, VAL_PHOTOS, cut_sample, random_shift, synthesize_stack
from ms_models.ift import IFT

P, S = 8, 128
TIE = 0.05  # mu-law units (the texture threshold): found and true supporting patch indistinguishable


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(0)
    out = []
    for _, pkg, name in TRAIN_PHOTOS + VAL_PHOTOS:
        stack = synthesize_stack(load_photo(pkg, name))
        h, w = stack[0].shape[:2]
        shifts = (random_shift(rng, 16, 40, P), random_shift(rng, 16, 40, P))
        y, x = int(rng.integers(48, h - S - 48)), int(rng.integers(48, w - S - 48))
        inputs, label = cut_sample(stack, y, x, S, shifts)
        out.append((inputs, label, shifts, stack[2]))
    return out


def _accuracy(net, windows):
    """Per frame: rows (top-1 is the true patch, patch textured, top-1 has exactly the true patch's
    pixels in the supporting frame's LDR input)."""
    g = S // P
    hits = {1: [], 3: []}
    for inputs, label, shifts, t in windows:
        idx = [i.asnumpy()[0, :, 0] for i in net.match(*[ms.Tensor(a[None]) for a in inputs])]
        for frame, found, (dy, dx) in zip((1, 3), idx, shifts):
            clip = 0.95 ** 2.2 / max(t[1], t[frame - 1])
            ref = patchify(np.log1p(5000 * np.minimum(label, clip)) / np.log1p(5000), P)
            textured = (ref.max(axis=(1, 2)) - ref.min(axis=(1, 2))) > 0.05
            # the supporting frame as the search compares it: HDR-domain channels (hdr_first) clipped to
            # the range both frames record, in mu-law units
            sup = patchify(np.log1p(5000 * np.minimum(inputs[frame - 1][:3], clip)) / np.log1p(5000), P)
            for r in range(g):
                for c in range(g):
                    rr, cc = r - dy // P, c - dx // P          # ref patch (r, c) shows sup patch (rr, cc)
                    if 0 <= rr < g and 0 <= cc < g:
                        true, got = rr * g + cc, int(found[r * g + c])
                        same = float(np.abs(sup[got] - sup[true]).max()) <= TIE
                        hits[frame].append((got == true, textured[r * g + c], same))
    return {f: np.array(v) for f, v in hits.items()}


@pytest.fixture(scope="module")
def exact_hits(windows):
    net = IFT(embed_dim=8, depths=(2,), num_heads=(2,), patch_size=P, k=1, fgps_backend="exact", scf_heads=2)
    return _accuracy(net, windows)


def test_fgps_finds_the_translated_patch(exact_hits, minimum=0.9):
    for frame, h in exact_hits.items():
        textured = h[h[:, 1], 0].mean()
        print(f"exact frame {frame}: top-1 {textured:.3f} over {int(h[:, 1].sum())} textured patches, "
              f"{h[:, 0].mean():.3f} over all {len(h)} ({1 - h[:, 1].mean():.2f} flat after clipping)")
        assert textured >= minimum


def test_fgps_match_is_the_true_patch_or_indistinguishable_from_it(exact_hits, minimum=0.9):
    """Over ALL in-view patches of both supporting frames: the top-1 patch is the true one, or it
    differs from the true one by at most TIE everywhere in the range both frames record (a saturated
    or uniform block: no search can tell the copies apart, and fusing either gives the same content).
    Needs the level term of the descriptors (``search_level_weight``): with pure NCC a flat patch is
    the zero vector after centring and matches an arbitrary patch."""
    for frame, h in exact_hits.items():
        ok = h[:, 0] | h[:, 2]
        ties = (~h[:, 0] & h[:, 2]).sum()
        print(f"exact frame {frame}: true or indistinguishable {ok.mean():.3f} over all {len(h)} "
              f"(strict {h[:, 0].mean():.3f}; {ties} indistinguishable copies)")
        assert ok.mean() >= minimum
        assert h[:, 0].sum() > 0.5 * len(h)     # the criterion is not carried by ties alone


def test_pure_ncc_descriptors_match_flat_patches_arbitrarily(windows):
    """The reason for the level term: with ``search_level_weight=0`` the flat patches are matched to
    patches that differ from the true one: about a tenth of all patches here, none with the level term."""
    net = IFT(embed_dim=8, depths=(2,), num_heads=(2,), patch_size=P, k=1, fgps_backend="exact", scf_heads=2,
              search_level_weight=0.0)
    h = _accuracy(net, windows)
    ok = np.concatenate([v[:, 0] | v[:, 2] for v in h.values()])
    print(f"pure NCC: true or indistinguishable {ok.mean():.3f}, {(~ok).sum()} wrong of {len(ok)}")
    assert (~ok).sum() > 0.05 * len(ok)


def test_saturation_level_estimates_inverse_exposure(windows):
    net = IFT(embed_dim=8, depths=(2,), num_heads=(2,), patch_size=P, k=1, scf_heads=2)
    inputs, _, _, t = windows[0]
    got = [float(net.saturation_level(ms.Tensor(x[None])).asnumpy()[0]) for x in inputs]
    np.testing.assert_allclose(got, 1.0 / t, rtol=1e-3)
