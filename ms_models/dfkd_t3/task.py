"""DFKD-T3 task for the MindSpore engine (docs/dev/CONTRACTS.md).

Preparation (cached under ``~/.cache/noah-ms/dfkd_t3`` keyed by the settings that determine it):
1. teacher: all-MiniLM-L6-v2 (packaged weights) + classifier, fine-tuned on the task's train split
   (the only use of task data besides the held-out evaluation);
2. generator: pretrained as a causal LM on the general-domain corpus (next sentence given a
   sentence), then frozen as ``generator_init``.
Training (the engine): alternating generator / student steps (``AlternatingStep``) on corpus
prefixes, labels and Gumbel noise drawn in numpy. ``evaluate``: student and teacher task metric on
the held-out split, plus distinct-1/2, teacher confidence and label entropy of generated text.
"""
import hashlib
import json
import os

import numpy as np
import mindspore as ms
from mindspore import ParameterTuple, Tensor, nn, ops

from common import dfkd_t3_data as D
from common.data.glue import METRICS, load_glue
from common.metrics.text import accuracy, distinct_n, label_statistics, matthews_corrcoef
from common.text.wordpiece import WordPieceTokenizer
from common.weights import read_weights, write_weights
from ms_models.backbones.bert import BertForSequenceClassification
from ms_models.engine.optim import AdamW
from ms_models.engine.trainer import graph_mode
from ms_models.utils.weights import load_numpy_state, state_numpy

from .generator import TextGenerator
from .model import DFKDT3
from .pretrained import load_minilm, minilm_config
from .train_step import AlternatingStep

FRAMEWORK = "ms"


def cache_path(kind, settings):
    """``~/.cache/noah-ms/dfkd_t3/<kind>_<hash>_<framework>.npz`` for ``settings`` (a JSON-able dict)."""
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    root = os.environ.get("DFKD_T3_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "noah-ms", "dfkd_t3"))
    return os.path.join(root, f"{kind}_{key}_{FRAMEWORK}.npz")


class _FitStep(nn.Cell):
    """One AdamW step of ``loss_fn(*batch)`` over ``params`` (preparation phases and baselines)."""

    def __init__(self, loss_fn, params, lr, weight_decay=0.01):
        super().__init__(auto_prefix=False)
        self.loss_fn = loss_fn
        self.opt = AdamW([{"params": list(params)}])
        self.grad_fn = ms.value_and_grad(loss_fn, None, ParameterTuple(list(params)))
        self.hyper = tuple(Tensor(np.asarray([v], np.float32)) for v in (lr, 0.0, weight_decay))

    def construct(self, *batch):
        loss, grads = self.grad_fn(*batch)
        return ops.depend(loss, self.opt(grads, *self.hyper))


def fit(loss_fn, params, batches, lr, weight_decay=0.01, graph=True):
    """Run ``_FitStep`` over ``batches`` (tuples of numpy arrays); returns the loss per step."""
    step = _FitStep(loss_fn, params, lr, weight_decay)
    out = []
    with graph_mode(graph):
        for b in batches:
            out.append(float(step(*(Tensor(a) for a in b)).asnumpy()))
    return out


class _ClsLoss(nn.Cell):
    def __init__(self, clf):
        super().__init__(auto_prefix=False)
        self.clf = clf

    def construct(self, ids, mask, labels):
        return ops.cross_entropy(self.clf(ids, mask), labels)


class _LMLoss(nn.Cell):
    """Teacher-forced next-sentence CE of the generator on ``prefix + target`` (target mask (B, L))."""

    def __init__(self, gen):
        super().__init__(auto_prefix=False)
        self.gen = gen

    def construct(self, prefix_ids, prefix_mask, target, target_mask):
        p = prefix_ids.shape[1]
        ids = ops.concat((prefix_ids, target), axis=1)
        mask = ops.concat((prefix_mask, ops.ones(target.shape, ms.int32)), axis=1)
        logits = self.gen(ids, mask)[:, p - 1:-1]
        logp = ops.log_softmax(logits, axis=-1)
        nll = -ops.gather_elements(logp, 2, target[:, :, None]).squeeze(-1)
        m = target_mask.astype(ms.float32)
        return (nll * m).sum() / ops.maximum(m.sum(), 1.0)


class _KDLoss(nn.Cell):
    def __init__(self, model):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, ids, mask):
        return self.model.student_kd_on_ids(ids, mask)


def _cfg_dict(node):
    return json.loads(json.dumps(node, default=str))


class DFKDT3Task:
    """Model, data and losses of one DFKD-T3 run, built from a config (configs/dfkd_t3/base.yaml)."""

    loss_names = ("gen", "spec", "div", "fid", "adv", "kd")
    build_train_step = AlternatingStep

    def __init__(self, cfg, prepare=True):
        self.cfg = cfg
        d, m, k = cfg.data, cfg.model, cfg.dfkd
        self.k_g, self.k_s = int(k.k_g), int(k.k_s)
        self.seed = int(cfg.train.seed)
        self.tokenizer = WordPieceTokenizer()
        self.corpus = D.corpus_sentences(d.corpus)
        self.task_name = "sst2" if d.task == "demo_sentiment" else d.task
        if d.task == "demo_sentiment":
            self.train_text = D.load_demo_sentiment("train", n_train=d.demo_train_size, n_dev=d.demo_dev_size)
            self.dev_text = D.load_demo_sentiment("dev", n_train=d.demo_train_size, n_dev=d.demo_dev_size)
        else:
            if not d.root:
                raise ValueError(f"data.root: a GLUE {d.task} folder is required for data.task={d.task}")
            self.train_text = load_glue(d.root, d.task, "train")
            self.dev_text = load_glue(d.root, d.task, "dev")
        label_words = list(k.label_words)
        if len(label_words) != int(m.num_labels):
            raise ValueError(f"dfkd.label_words has {len(label_words)} words for model.num_labels={m.num_labels}")
        corpus_tokens = [self.tokenizer.encode(s, add_special_tokens=False) for s in self.corpus]
        vocab_ids = D.build_generator_vocab(self.tokenizer, corpus_tokens, int(m.generator.vocab_size), label_words)
        self.vocab = D.GeneratorVocab(self.tokenizer, vocab_ids, label_words)
        self.corpus_ids = [t for t in (self.vocab.from_teacher(c) for c in corpus_tokens) if len(t) >= 3]
        self.prefix_len = int(d.source_len) + 2
        self.gen_len = int(d.gen_len)
        self._vocab_ids, self._prepare, self._model = vocab_ids, prepare, None

    @property
    def model(self):
        """The DFKD-T3 system (generator, frozen copy, teacher, student), built on first use: teacher
        fine-tuning and generator pretraining (or their cached results) happen only when a caller
        needs them, so ``evaluate_with`` on an exported student (``ascend/infer.py``) never runs them."""
        if self._model is None:
            self._model = self._build_model(self._vocab_ids, self._prepare)
        return self._model

    def _build_model(self, vocab_ids, prepare):
        m, k = self.cfg.model, self.cfg.dfkd
        ms.set_seed(self.seed)
        teacher = self._teacher(prepare)
        gen = self._generator(vocab_ids, prepare)
        gen0 = self._new_generator()
        load_numpy_state(gen0, state_numpy(gen))
        student = BertForSequenceClassification(minilm_config(num_hidden_layers=int(m.student_layers),
                                                             hidden_dropout_prob=float(m.student_dropout),
                                                             attention_probs_dropout_prob=0.0), int(m.num_labels))
        if m.student_init == "minilm":
            load_minilm(student.bert)
        return DFKDT3(gen, gen0, teacher, student, vocab_ids, self.tokenizer.cls_id, self.tokenizer.sep_id,
                      grad_estimator=k.grad_estimator, conditioning=k.conditioning, fidelity=k.fidelity,
                      lambda_div=k.lambda_div, lambda_adv=k.lambda_adv, beta_fid=k.beta_fid, tau_kd=k.tau_kd)

    # ---- preparation ---------------------------------------------------------------------------
    def _new_generator(self):
        g = self.cfg.model.generator
        return TextGenerator(int(g.vocab_size), hidden=int(g.hidden), layers=int(g.layers), heads=int(g.heads),
                             ffn=int(g.ffn), max_len=self.prefix_len + self.gen_len)

    def _teacher(self, prepare):
        m, t = self.cfg.model, self.cfg.teacher
        # no dropout: the frozen teacher must be deterministic while the engine runs the model in train mode
        clf = BertForSequenceClassification(minilm_config(num_hidden_layers=int(m.teacher_layers), hidden_dropout_prob=0.0,
                                                          attention_probs_dropout_prob=0.0), int(m.num_labels))
        load_minilm(clf.bert)
        if m.teacher_checkpoint:
            load_numpy_state(clf, read_weights(m.teacher_checkpoint))
            return clf
        settings = {"data": _cfg_dict(self.cfg.data), "teacher": _cfg_dict(t), "layers": m.teacher_layers,
                    "labels": m.num_labels, "seed": self.seed}
        path = cache_path("teacher", settings)
        if os.path.isfile(path):
            load_numpy_state(clf, read_weights(path))
        elif prepare:
            sents, labels = self.train_text
            ids, mask = self.tokenizer.encode_batch(sents, int(self.cfg.data.max_len))
            labels = np.asarray(labels, np.int32)
            rng = np.random.default_rng(self.seed)
            bs = int(t.batch_size)
            order = np.concatenate([rng.permutation(len(labels)) for _ in range(int(t.epochs))])
            batches = [(ids[o], mask[o], labels[o]) for o in
                       (order[i:i + bs] for i in range(0, len(order) - bs + 1, bs))]
            clf.set_train(True)
            params = [q for q in clf.trainable_params()
                      if not (t.freeze_embeddings and "word_embeddings" in q.name)]
            fit(_ClsLoss(clf), params, batches, float(t.lr))
            write_weights(path, state_numpy(clf))
        clf.set_train(False)
        return clf

    def pretrain_batches(self, steps, batch_size, seed):
        """Next-sentence pairs ``(prefix_ids, prefix_mask, target, target_mask)`` (prompt = [SEP])."""
        rng = np.random.default_rng(seed)
        n = len(self.corpus_ids)
        for _ in range(steps):
            idx = rng.integers(0, n - 1, batch_size)
            pre, mask = D.prefix_batch([self.corpus_ids[i] for i in idx], [1] * batch_size, self.prefix_len)
            tgt = np.full((batch_size, self.gen_len), 2, np.int32)
            tmask = np.zeros_like(tgt)
            for r, i in enumerate(idx):
                nxt = self.corpus_ids[i + 1][:self.gen_len]
                tgt[r, :len(nxt)], tmask[r, :len(nxt)] = nxt, 1
            yield pre, mask, tgt, tmask

    def _generator(self, vocab_ids, prepare):
        g = self.cfg.model.generator
        gen = self._new_generator()
        if g.checkpoint:
            load_numpy_state(gen, read_weights(g.checkpoint))
            return gen
        p = self.cfg.pretrain
        settings = {"generator": _cfg_dict(g), "pretrain": _cfg_dict(p), "corpus": self.cfg.data.corpus,
                    "source_len": self.cfg.data.source_len, "gen_len": self.gen_len, "seed": self.seed,
                    "vocab": hashlib.sha1(vocab_ids.tobytes()).hexdigest()}
        path = cache_path("generator", settings)
        if os.path.isfile(path):
            load_numpy_state(gen, read_weights(path))
        elif prepare and int(p.steps) > 0:
            self.pretrain_losses = fit(_LMLoss(gen), gen.trainable_params(),
                                       self.pretrain_batches(int(p.steps), int(p.batch_size), self.seed + 7), float(p.lr))
            write_weights(path, state_numpy(gen))
        return gen

    # ---- engine protocol -----------------------------------------------------------------------
    def steps_per_epoch(self):
        return max(1, len(self.corpus_ids) // int(self.cfg.data.batch_size))

    def tau_at(self, step, total):
        k = self.cfg.dfkd
        frac = min(1.0, step / max(1, total - 1))
        return float(k.tau_g_start) + (float(k.tau_g_end) - float(k.tau_g_start)) * frac

    def train_batches(self, epoch):
        """``(prefix_ids, prefix_mask, labels, gumbel (B, k_g + k_s, L, N), tau (B,))`` per step."""
        bs, n_lab = int(self.cfg.data.batch_size), int(self.cfg.model.num_labels)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.corpus_ids))
        spe = self.steps_per_epoch()
        total = spe * int(self.cfg.train.epochs)
        if int(self.cfg.train.max_steps):
            total = min(total, int(self.cfg.train.max_steps))
        cond = self.cfg.dfkd.conditioning == "label_prompt"
        for i in range(spe):
            idx = order[i * bs:(i + 1) * bs]
            labels = rng.integers(0, n_lab, bs).astype(np.int32)
            prompts = self.vocab.prompt_ids[labels] if cond else np.ones(bs, np.int32)
            pre, mask = D.prefix_batch([self.corpus_ids[j] for j in idx], prompts, self.prefix_len)
            gumbel = D.gumbel_noise(rng, (bs, self.k_g + self.k_s, self.gen_len, len(self.vocab.vocab_ids)))
            tau = np.full(bs, self.tau_at(epoch * spe + i, total), np.float32)
            yield pre, mask, labels, gumbel, tau

    def forward_loss(self, model, prefix_ids, prefix_mask, labels, gumbel, tau):
        """The generator objective and the student KD loss at the current weights (no update)."""
        _, aux = model.generator_objective(prefix_ids, prefix_mask, labels, gumbel[:, 0], tau[0])
        kd = model.student_objective(prefix_ids, prefix_mask, gumbel[:, self.k_g])
        return aux[0] + kd, (aux[0], aux[1], aux[2], aux[3], aux[4], kd)

    def _split(self, module, prefix):
        decay, no_decay = [], []
        for p in module.trainable_params():
            (no_decay if p.ndim <= 1 or "embed" in p.name.rsplit(".", 1)[-1] else decay).append(p)
        wd = float(self.cfg.optim.weight_decay)
        return [{"name": f"{prefix}_decay", "params": decay, "weight_decay": wd},
                {"name": f"{prefix}_no_decay", "params": no_decay, "weight_decay": 0.0}]

    def param_groups(self, model):
        """generator_{decay,no_decay} (lr_scale ``optim.generator_lr_scale``), student_{decay,no_decay}."""
        gen = self._split(model.generator, "generator")
        for g in gen:
            g["lr_scale"] = float(self.cfg.optim.generator_lr_scale)
        return [g for g in gen + self._split(model.student, "student") if g["params"]]

    def group_names(self, model):
        return [g["name"] for g in self.param_groups(model)]

    # ---- evaluation ----------------------------------------------------------------------------
    def encode(self, sentences):
        """Eval tokenisation: WordPiece ``[CLS] ... [SEP]`` padded / truncated to ``data.max_len``
        -> ``(input_ids int32 (N, L), attention_mask int32 (N, L))``."""
        return self.tokenizer.encode_batch(sentences, int(self.cfg.data.max_len))

    @staticmethod
    def predictor(clf, bs=64):
        """``predict(ids, mask) -> logits`` (numpy) of a MindSpore classifier, in chunks of ``bs``."""
        def predict(ids, mask):
            return np.concatenate([clf(Tensor(ids[i:i + bs]), Tensor(mask[i:i + bs])).asnumpy()
                                   for i in range(0, len(ids), bs)])
        return predict

    def _logits(self, clf, sentences, bs=64):
        return self.predictor(clf, bs)(*self.encode(sentences))

    def task_metric(self, pred, labels):
        return (matthews_corrcoef if METRICS[self.task_name] == "matthews_corrcoef" else accuracy)(pred, labels)

    def generate_texts(self, model, n, seed=12345):
        """``(sources, labels, gen_ids (n, L))`` sampled with fixed evaluation noise."""
        rng = np.random.default_rng(seed)
        bs = int(self.cfg.data.batch_size)
        idx = rng.permutation(len(self.corpus_ids))[:n]
        labels = rng.integers(0, int(self.cfg.model.num_labels), n).astype(np.int32)
        cond = self.cfg.dfkd.conditioning == "label_prompt"
        out = []
        for i in range(0, n, bs):
            sl = slice(i, min(n, i + bs))
            prompts = self.vocab.prompt_ids[labels[sl]] if cond else np.ones(len(labels[sl]), np.int32)
            pre, mask = D.prefix_batch([self.corpus_ids[j] for j in idx[sl]], prompts, self.prefix_len)
            g = D.gumbel_noise(rng, (len(pre), self.gen_len, len(self.vocab.vocab_ids)))
            out.append(model.generate_ids(Tensor(pre), Tensor(mask), Tensor(g)).asnumpy())
        return [self.vocab.decode(self.corpus_ids[j]) for j in idx], labels, np.concatenate(out)

    def text_statistics(self, model, gen_ids):
        texts, tmask = model.text_ids(Tensor(gen_ids))
        t_logits = model.teacher(texts, tmask).asnumpy()
        stats = label_statistics(t_logits)
        toks = [list(r) for r in gen_ids]
        return {"distinct_1": distinct_n(toks, 1), "distinct_2": distinct_n(toks, 2),
                "teacher_confidence": stats["confidence"], "teacher_label_entropy": stats["batch_label_entropy"]}

    def evaluate_with(self, predict, run_dir=None):
        """Student metric of any ``predict(input_ids, attention_mask) -> logits (N, num_labels)``
        (numpy int32 (N, data.max_len) in) on the held-out split; ``ascend/infer.py`` passes an
        exported student here, ``evaluate`` the MindSpore one."""
        sents, labels = self.dev_text
        logits = np.asarray(predict(*self.encode(sents)))
        if logits.shape != (len(sents), int(self.cfg.model.num_labels)):
            raise ValueError(f"evaluate_with: predict returned shape {logits.shape}, expected "
                             f"({len(sents)}, model.num_labels={self.cfg.model.num_labels})")
        return {"student_metric": self.task_metric(logits.argmax(1), np.asarray(labels)),
                "metric": METRICS[self.task_name], "primary": "student_metric"}

    def evaluate(self, model, run_dir=None):
        """Student / teacher metric on the held-out split and generated-text statistics."""
        sents, labels = self.dev_text
        out = self.evaluate_with(self.predictor(model.student))
        t_pred = self._logits(model.teacher, sents).argmax(1)
        n = int(self.cfg.eval.num_generated)
        sources, glabels, gen_ids = self.generate_texts(model, n)
        out = {"student_metric": out["student_metric"], "teacher_metric": self.task_metric(t_pred, np.asarray(labels)),
               "metric": out["metric"], **self.text_statistics(model, gen_ids), "primary": "student_metric"}
        if run_dir:
            from common.atomic import atomic_path
            path = os.path.join(str(run_dir), "generated.jsonl")
            with atomic_path(path) as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    for s, y, g in zip(sources, glabels, gen_ids):
                        f.write(json.dumps({"source": s, "prompt_label": int(y), "text": self.vocab.decode(g)}) + "\n")
        return out


def build_task(cfg):
    return DFKDT3Task(cfg)
