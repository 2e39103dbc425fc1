"""PPT off the shelf on the demo ViT: accuracy against MACs for tau = 0, the PPT tau and tau = inf.

    python -m ms_models.ppt.demo --ckpt runs/ppt/<run>/last.ckpt [--r 4 8 12 16] [--locs 1 3 5]

The checkpoint comes from ``bash scripts/run_train_ascend.sh ppt`` (configs/ppt/demo.yaml: a small
ViT trained without token reduction). Its weights are loaded, unchanged, into PPT models with r
tokens removed at each block of ``--locs``, under three policies: prune only (tau = 0), PPT
(tau = 7e-5 rescaled to the token count, ``tau * (196 / N_patch)^2``) and pool only (tau = inf).
Every model is evaluated on the val split (top-1, agreement with the unreduced model's
predictions, fraction of images pooling at each compression block). Writes
``docs/benchmarks/ppt_demo.json`` and ``docs/ppt_demo.png`` (or ``--out-json`` / ``--out-png``).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def evaluate(net, batches):
    """(predictions (n,), labels (n,), pool fractions per compression block) of ``net``."""
    import mindspore as ms
    preds, labels, bits = [], [], []
    for images, y in batches:
        out = net(ms.Tensor(images))
        logits, trace = out if isinstance(out, tuple) else (out, ())
        preds.append(logits.asnumpy().argmax(-1))
        labels.append(np.asarray(y))
        bits.append([t.asnumpy() for t in trace[0::4]])
    per_block = [float(np.concatenate([b[k] for b in bits]).mean()) for k in range(len(bits[0]))]
    return np.concatenate(preds), np.concatenate(labels), per_block


def run(cfg, weights, rs, locs, tau_ppt):
    """Rows of the demo table (dicts)."""
    from ms_models.registry import create_model
    from ms_models.utils.weights import load_numpy_state
    from common.data.classification import ClassificationData
    from .macs import ppt_macs

    data = ClassificationData(cfg)
    batches = list(data.val)
    kw = dict(cfg.model.kwargs, num_classes=data.num_classes)

    def build(r, tau):
        net = create_model(cfg.model.name, r=r, pp_loc_list=locs if r else [], tau=tau, **kw)
        load_numpy_state(net, weights, strict=True)
        net.set_train(False)
        net.set_trace(True)
        return net

    def macs(r, pooled):
        return ppt_macs(kw["embed_dim"], kw["depth"], kw["num_heads"], img_size=kw["img_size"],
                        patch_size=kw["patch_size"], num_classes=data.num_classes, r=r,
                        pp_loc_list=locs if r else [], pooled=pooled)

    base_pred, labels, _ = evaluate(build(0, 0.0), batches)
    rows = [{"policy": "none", "r": 0, "tau": None, "gmacs": macs(0, [])["total"] / 1e9,
             "top1": 100 * float((base_pred == labels).mean()), "agreement": 100.0, "pool_fraction": []}]
    for r in rs:
        for policy, tau in (("prune (tau=0)", 0.0), ("PPT", tau_ppt), ("pool (tau=inf)", float("inf"))):
            pred, _, frac = evaluate(build(r, tau), batches)
            # MACs of the average image: the matching matmul counts for the pooled fraction
            m_prune = macs(r, [False] * len(frac))["total"]
            m = m_prune + sum(f * (macs(r, [j == k for j in range(len(frac))])["total"] - m_prune)
                              for k, f in enumerate(frac))
            rows.append({"policy": policy, "r": r, "tau": tau if np.isfinite(tau) else "inf", "gmacs": m / 1e9,
                         "top1": 100 * float((pred == labels).mean()),
                         "agreement": 100 * float((pred == base_pred).mean()), "pool_fraction": frac})
            print(f"[ppt demo] r={r:2d} {policy:15s} {m / 1e6:7.2f} MMACs top-1 {rows[-1]['top1']:5.1f} "
                  f"agreement {rows[-1]['agreement']:5.1f} pool fraction {[round(f, 2) for f in frac]}")
    return rows


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    base = rows[0]
    for policy, style in (("prune (tau=0)", "s--"), ("PPT", "o-"), ("pool (tau=inf)", "^--")):
        pts = sorted((r["gmacs"] * 1e3, r["top1"]) for r in rows if r["policy"] == policy)
        ax.plot(*zip(*pts), style, label=policy)
    ax.axhline(base["top1"], color="gray", lw=0.8, label=f"no reduction ({base['gmacs'] * 1e3:.1f} MMACs)")
    ax.set_xlabel("MMACs per image")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="training checkpoint of the demo config")
    ap.add_argument("--config", default="ppt", help="config of that run (default: configs/ppt/demo.yaml)")
    ap.add_argument("--r", type=int, nargs="+", default=[4, 8, 12, 16])
    ap.add_argument("--locs", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--tau", type=float, default=7e-5, help="tau at 196 patches, rescaled to the demo's")
    ap.add_argument("--out-json", default=str(REPO / "docs/benchmarks/ppt_demo.json"))
    ap.add_argument("--out-png", default=str(REPO / "docs/ppt_demo.png"))
    args = ap.parse_args(argv)

    import mindspore as ms
    from common.config import load_config
    from common.runlog import write_json_atomic
    from ms_models.engine import read_eval_weights
    from .model import effective_tau

    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    cfg = load_config(args.config)
    kw = cfg.model.kwargs
    tau = effective_tau(args.tau, (kw["img_size"] // kw["patch_size"]) ** 2, True)
    rows = run(cfg, read_eval_weights(args.ckpt), args.r, args.locs, tau)
    result = {"config": str(args.config), "ckpt": str(args.ckpt), "locs": args.locs, "tau_ppt": tau, "rows": rows}
    write_json_atomic(Path(args.out_json), result)
    plot(rows, Path(args.out_png), f"PPT off the shelf, demo ViT (r at blocks {args.locs})")
    print(f"wrote {args.out_json} and {args.out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
