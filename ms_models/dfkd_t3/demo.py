"""DFKD-T3 demo on the built-in sentiment task (MindSpore):

    python -m ms_models.dfkd_t3.demo [--config configs/dfkd_t3/demo.yaml] [--set k=v ...]

The same 2-layer MiniLM student (same initial weights, same number of student steps, batch size
and lr) is distilled from the same fine-tuned teacher on four kinds of text, none of it task data:
  tuned     text from the generator trained with the DFKD-T3 objective (the engine run, alternating)
  untuned   text from the pretrained generator G_0 (no DFKD-T3 tuning)
  corpus    raw corpus sentences (pydoc_data topics), cut to the generated length
  random    uniformly random tokens of the generator vocabulary
Each student is scored on the held-out task split; each kind of text gets distinct-1/2, mean
teacher confidence and teacher-label entropy (256 texts). Writes
``docs/benchmarks/dfkd_t3_demo.json`` and ``docs/dfkd_t3_demo.png``.
"""
import argparse
import json
import os
import sys
import time

import ms_models.platform  # noqa: F401  (oneDNN settings before mindspore loads)
import numpy as np
import mindspore as ms

from common import dfkd_t3_data as D
from common.atomic import atomic_path
from common.config import load_config
from common.runlog import make_run_dir, run_parent
from ms_models.engine import Trainer
from ms_models.utils.weights import load_numpy_state, state_numpy

from .task import DFKDT3Task, _KDLoss, fit


def _wrap(task, gen_ids):
    """(n, L) generator ids ([PAD] = 0 marks a short corpus sentence) -> teacher ids (n, L + 2)
    ``[CLS] ... [SEP] [PAD]...`` and the attention mask."""
    tok = task.tokenizer
    n, length = gen_ids.shape
    ids = np.full((n, length + 2), tok.pad_id, np.int32)
    mask = np.zeros((n, length + 2), np.int32)
    for r, row in enumerate(gen_ids):
        seq = [tok.cls_id] + [int(task.vocab.vocab_ids[t]) for t in row if t != 0] + [tok.sep_id]
        ids[r, :len(seq)], mask[r, :len(seq)] = seq, 1
    return ids, mask


def corpus_text(task, n, rng):
    length = task.gen_len
    out = np.zeros((n, length), np.int64)
    for r, j in enumerate(rng.integers(0, len(task.corpus_ids), n)):
        toks = task.corpus_ids[j][:length]
        out[r, :len(toks)] = toks
    return out


def random_text(task, n, rng):
    return rng.integers(2, len(task.vocab.vocab_ids), (n, task.gen_len))


def generator_text(task, model, n, rng):
    """Text sampled from ``model.generator`` with label prompts and Gumbel noise from ``rng``."""
    bs = int(task.cfg.data.batch_size)
    out = []
    cond = task.cfg.dfkd.conditioning == "label_prompt"
    for i in range(0, n, bs):
        m = min(bs, n - i)
        idx = rng.integers(0, len(task.corpus_ids), m)
        labels = rng.integers(0, int(task.cfg.model.num_labels), m)
        prompts = task.vocab.prompt_ids[labels] if cond else np.ones(m, np.int32)
        pre, mask = D.prefix_batch([task.corpus_ids[j] for j in idx], prompts, task.prefix_len)
        g = D.gumbel_noise(rng, (m, task.gen_len, len(task.vocab.vocab_ids)))
        out.append(model.generate_ids(ms.Tensor(pre), ms.Tensor(mask), ms.Tensor(g)).asnumpy())
    return np.concatenate(out).astype(np.int64)


def text_stats(task, gen_ids):
    from common.metrics.text import distinct_n, label_statistics
    ids, mask = _wrap(task, gen_ids)
    logits = np.concatenate([task.model.teacher(ms.Tensor(ids[i:i + 64]), ms.Tensor(mask[i:i + 64])).asnumpy()
                             for i in range(0, len(ids), 64)])
    st = label_statistics(logits)
    toks = [[t for t in row if t != 0] for row in gen_ids]
    return {"distinct_1": distinct_n(toks, 1), "distinct_2": distinct_n(toks, 2),
            "teacher_confidence": st["confidence"], "teacher_label_entropy": st["batch_label_entropy"],
            "examples": [task.vocab.decode([t for t in row if t != 0]) for row in gen_ids[:5]]}


def student_metric(task):
    sents, labels = task.dev_text
    return task.task_metric(task._logits(task.model.student, sents).argmax(1), np.asarray(labels))


def kd_baseline(task, text_ids, steps, bs, lr):
    ids, mask = _wrap(task, text_ids)
    batches = [(ids[i * bs:(i + 1) * bs], mask[i * bs:(i + 1) * bs]) for i in range(steps)]
    task.model.set_train(True)
    losses = fit(_KDLoss(task.model), task.model.student.trainable_params(), batches, lr)
    task.model.set_train(False)
    return losses


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results["conditions"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(axes, ("student_metric", "teacher_confidence", "distinct_2"),
                              ("student accuracy (held-out)", "mean teacher confidence of text", "distinct-2 of text")):
        vals = [results["conditions"][n][key] for n in names]
        ax.bar(names, vals, color=["C0", "C1", "C2", "C3"][:len(names)])
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].axhline(results["teacher_metric"], color="k", ls="--", lw=1, label="teacher")
    axes[0].axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/dfkd_t3/demo.yaml")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--out-json", default="docs/benchmarks/dfkd_t3_demo.json")
    ap.add_argument("--out-png", default="docs/dfkd_t3_demo.png")
    args = ap.parse_args(argv)
    ms.set_device("CPU")
    ms.runtime.launch_blocking()
    cfg = load_config(args.config, args.overrides)
    ms.set_seed(int(cfg.train.seed))
    t0 = time.perf_counter()
    task = DFKDT3Task(cfg)
    t_prep = time.perf_counter() - t0
    model = task.model
    student0, gen0 = state_numpy(model.student), state_numpy(model.generator)
    steps = int(cfg.train.max_steps) * task.k_s
    bs, lr = int(cfg.data.batch_size), float(cfg.optim.lr)
    n_text = steps * bs
    conditions = {}

    run_dir = make_run_dir(run_parent(cfg, "dfkd_t3"), "demo_tuned")
    t1 = time.perf_counter()
    Trainer(task, cfg, run_dir, device="CPU").fit()
    t_dfkd = time.perf_counter() - t1
    model.set_train(False)
    conditions["tuned"] = {"student_metric": student_metric(task),
                           **text_stats(task, generator_text(task, model, 256, np.random.default_rng(99)))}
    tuned_gen = state_numpy(model.generator)

    load_numpy_state(model.generator, gen0)  # G_0: the pretrained, un-tuned generator
    makers = {"untuned": lambda rng: generator_text(task, model, n_text, rng),
              "corpus": lambda rng: corpus_text(task, n_text, rng),
              "random": lambda rng: random_text(task, n_text, rng)}
    for name, make in makers.items():
        load_numpy_state(model.student, student0)
        text = make(np.random.default_rng(1000))
        kd_baseline(task, text, steps, bs, lr)
        conditions[name] = {"student_metric": student_metric(task), **text_stats(task, text[:256])}
        print(f"[demo] {name}: {conditions[name]['student_metric']:.4f}", file=sys.stderr)
    load_numpy_state(model.generator, tuned_gen)

    sents, labels = task.dev_text
    teacher_metric = task.task_metric(task._logits(model.teacher, sents).argmax(1), np.asarray(labels))
    results = {"task": "demo_sentiment (template sentences, lexicon-valence labels)", "metric": "accuracy",
               "held_out_size": len(labels), "teacher": "all-MiniLM-L6-v2 + classifier, fine-tuned",
               "teacher_metric": teacher_metric, "student": f"{cfg.model.student_layers}-layer MiniLM",
               "student_steps": steps, "batch_size": bs, "student_lr": lr,
               "student_init_metric": None, "conditions": conditions,
               "seconds": {"prepare": round(t_prep, 1), "dfkd_training": round(t_dfkd, 1)},
               "config": args.config, "overrides": args.overrides}
    load_numpy_state(model.student, student0)
    results["student_init_metric"] = student_metric(task)
    with atomic_path(args.out_json) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(results, args.out_png)
    print(json.dumps({k: v["student_metric"] for k, v in conditions.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
