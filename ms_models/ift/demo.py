"""IFT demo report: FGPS retrieval accuracy under pure translation, and the PSNR-mu table and PNG of
the demo runs (FGPS + SCF vs the window-only baseline, trained by scripts/train.py).

    python -m ms_models.ift.demo --fgps-only                       # docs/benchmarks/ift_fgps.json
    bash scripts/run_train_ascend.sh configs/ift/demo.yaml --run-dir R1
    bash scripts/run_train_ascend.sh configs/ift/demo_window.yaml --run-dir R2
    python -m ms_models.ift.demo --checkpoints R1/last.ckpt R2/last.ckpt   # ift_demo.json, docs/ift_demo.png

Artefacts go under ``--out`` (default: the repository's docs/ folder); writes are atomic.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import ms_models.platform  # noqa: F401  (oneDNN settings before mindspore loads)
import mindspore as ms
import numpy as np

from common.atomic import atomic_path
from common.config import load_config
from common.data.demo_classification import load_photo
from common.data.hdr_patches import patchify
from common.data.hdr_synthetic import TRAIN_PHOTOS, VAL_PHOTOS, cut_sample, random_shift, synthesize_stack
from common.data.hdr_task import save_tonemapped_row
from ms_models.engine.checkpoint import read_eval_weights
from ms_models.utils.weights import load_numpy_state

REPO = Path(__file__).resolve().parents[2]


def fgps_translation_accuracy(backend, patch=8, size=128, windows_per_photo=2, seed=0, **fgps_kw):
    """Top-1 accuracy of FGPS (exposure-aligned search) on synthetic stacks under pure translation by
    multiples of ``patch`` (16-40 px): over textured patches and over all patches, per frame; and over
    all patches counting a match that is the true patch or indistinguishable from it (within 0.05
    mu-law units everywhere after clipping to the range both frames record)."""
    from ms_models.ift import IFT
    net = IFT(embed_dim=8, depths=(2,), num_heads=(2,), patch_size=patch, k=1, fgps_backend=backend, scf_heads=2,
              **fgps_kw)
    rng = np.random.default_rng(seed)
    g = size // patch
    hits = {1: [], 3: []}
    seconds = 0.0
    for _, pkg, name in TRAIN_PHOTOS + VAL_PHOTOS:
        stack = synthesize_stack(load_photo(pkg, name))
        h, w = stack[0].shape[:2]
        for _ in range(windows_per_photo):
            shifts = (random_shift(rng, 16, 40, patch), random_shift(rng, 16, 40, patch))
            y, x = int(rng.integers(48, h - size - 48)), int(rng.integers(48, w - size - 48))
            inputs, label = cut_sample(stack, y, x, size, shifts)
            t0 = time.perf_counter()
            idx = [i.asnumpy()[0, :, 0] for i in net.match(*[ms.Tensor(a[None]) for a in inputs])]
            seconds += time.perf_counter() - t0
            for frame, found, (dy, dx) in zip((1, 3), idx, shifts):
                clip = 0.95 ** 2.2 / max(stack[2][1], stack[2][frame - 1])
                ref = patchify(np.log1p(5000 * np.minimum(label, clip)) / np.log1p(5000), patch)
                textured = (ref.max(axis=(1, 2)) - ref.min(axis=(1, 2))) > 0.05
                sup = patchify(np.log1p(5000 * np.minimum(inputs[frame - 1][:3], clip)) / np.log1p(5000), patch)
                for r in range(g):
                    for c in range(g):
                        rr, cc = r - dy // patch, c - dx // patch
                        if 0 <= rr < g and 0 <= cc < g:
                            true, got = rr * g + cc, int(found[r * g + c])
                            same = float(np.abs(sup[got] - sup[true]).max()) <= 0.05
                            hits[frame].append((got == true, textured[r * g + c], got == true or same))
    out = {"backend": backend, **fgps_kw, "match_seconds_total": round(seconds, 3)}
    for frame, v in hits.items():
        v = np.array(v)
        out[f"frame{frame}"] = {"top1_textured": float(v[v[:, 1], 0].mean()), "textured_patches": int(v[:, 1].sum()),
                                "top1_all": float(v[:, 0].mean()), "patches": len(v),
                                "true_or_indistinguishable_all": float(v[:, 2].mean())}
    return out


def write_json(path, obj):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def demo_report(checkpoints, out_dir):
    """Evaluate the two demo checkpoints (same step budget) on the held-out validation windows with
    the tiled protocol; write the table and a PNG of the first window."""
    from ms_models.ift.task import IFTTask
    names = ("fgps_scf", "window_only")
    configs = ("configs/ift/demo.yaml", "configs/ift/demo_window.yaml")
    table, preds = {}, {}
    for name, config, ckpt in zip(names, configs, checkpoints):
        task = IFTTask(load_config(REPO / config))
        net = task.model
        load_numpy_state(net, read_eval_weights(ckpt))
        net.set_train(False)
        meta = json.loads(Path(ckpt).with_suffix(".json").read_text(encoding="utf-8"))
        t0 = time.perf_counter()
        metrics = task.evaluate(net)
        table[name] = {k: metrics[k] for k in ("psnr_mu", "psnr_l", "ssim_mu", "ssim_l")}
        table[name].update(train_steps=meta["step"], eval_seconds=round(time.perf_counter() - t0, 1),
                           fgps_backend=task.cfg.model.fgps_backend)
        inputs, label = task.data.synthetic.val[0]
        preds[name] = net(*[ms.Tensor(x[None]) for x in inputs]).asnumpy()[0]
    table["psnr_mu_gain_db"] = table["fgps_scf"]["psnr_mu"] - table["window_only"]["psnr_mu"]
    save_tonemapped_row(Path(out_dir) / "ift_demo.png",
                        [inputs[0][:3], inputs[1][:3], preds["window_only"], preds["fgps_scf"], label])
    table["png"] = ("docs/ift_demo.png, mu-law tonemapped: short-exposure frame (moved), reference frame, "
                    "window-only output, FGPS+SCF output, label")
    table["validation"] = "4 windows 256x256 (astronaut, flower), supporting frames moved 16-40 px"
    write_json(Path(out_dir) / "benchmarks" / "ift_demo.json", table)
    return table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fgps-only", action="store_true", help="only measure FGPS retrieval (exact and lsh)")
    ap.add_argument("--checkpoints", nargs=2, metavar=("FGPS_CKPT", "WINDOW_CKPT"),
                    help="last.ckpt of the demo and demo_window runs (same step budget)")
    ap.add_argument("--out", default=str(REPO / "docs"))
    args = ap.parse_args(argv)
    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    if args.fgps_only:
        res = [fgps_translation_accuracy(b, search_level_weight=w) for w in (0.5, 0.0) for b in ("exact", "lsh")]
        write_json(Path(args.out) / "benchmarks" / "ift_fgps.json", res)
        print(json.dumps(res, indent=2))
        return 0
    if not args.checkpoints:
        ap.error("give --checkpoints FGPS_CKPT WINDOW_CKPT or --fgps-only")
    print(json.dumps(demo_report(args.checkpoints, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
