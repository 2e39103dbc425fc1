"""DFKD-T3 unit tests: WordPiece tokenizer against Hugging Face ``tokenizers``, strict MiniLM
loading, GLUE TSV loaders, metrics against scikit-learn / hand counts, and both gradient
estimators against their numpy formulas."""
import os

import numpy as np
import pytest
import mindspore as ms
from mindspore import ops

from common import dfkd_t3_data as D
from common.config import load_config
from common.data.glue import load_glue, read_glue_tsv, write_sst2_tsv
from common.metrics.text import accuracy, distinct_n, label_statistics, matthews_corrcoef
from common.text.wordpiece import WordPieceTokenizer, minilm_dir
from common.weights import WeightMismatchError
from ms_models.backbones.bert import BertModel
from ms_models.dfkd_t3 import losses
from ms_models.dfkd_t3.generator import TextGenerator
from ms_models.dfkd_t3.pretrained import load_minilm, minilm_config


@pytest.fixture(scope="module")
def tok():
    return WordPieceTokenizer()


def test_wordpiece_matches_hugging_face_tokenizers(tok):
    from tokenizers import Tokenizer
    ref = Tokenizer.from_file(os.path.join(minilm_dir(), "tokenizer.json"))
    ref.no_padding()
    ref.no_truncation()
    texts = ["Hello, World!  naïve café Résumé", "It's 3.5x faster -- isn't it?", "unbelievably\tun-tokenizable",
             "中文字符 and émojis 😀", "x" * 120] + D.corpus_sentences()[:200:7]
    for t in texts:
        assert tok.encode(t) == ref.encode(t).ids, t
    assert tok.decode(tok.encode("the unbelievable plot")) == "the unbelievable plot"


def test_minilm_loads_strictly_and_rejects_wrong_depth():
    net = load_minilm(BertModel(minilm_config()))
    assert len(net.parameters_dict()) == 104
    wrong = BertModel(minilm_config(num_hidden_layers=2, vocab_size=30000))
    with pytest.raises(WeightMismatchError, match="mis-shaped"):
        load_minilm(wrong)


def test_glue_loaders(tmp_path):
    sst = tmp_path / "sst"
    write_sst2_tsv(sst / "train.tsv", ["a fine film", "dull"], [1, 0])
    (sst / "dev.tsv").write_text("sentence\tlabel\ngood\t1\nbroken row\nbad\t0\nodd\t7\n", encoding="utf-8")
    assert load_glue(str(sst), "sst2", "train") == (["a fine film", "dull"], [1, 0])
    assert read_glue_tsv(str(sst / "dev.tsv"), "sst2") == (["good", "bad"], [1, 0])  # 2 malformed rows skipped
    cola = tmp_path / "cola"
    cola.mkdir()
    (cola / "in_domain_dev.tsv").write_text("gj04\t1\t\tThe boy ran.\ngj04\t0\t*\tRan boy the.\n", encoding="utf-8")
    assert load_glue(str(cola), "cola", "dev") == (["The boy ran.", "Ran boy the."], [1, 0])
    with pytest.raises(FileNotFoundError, match="in_domain_train.tsv"):
        load_glue(str(cola), "cola", "train")
    (cola / "bad.tsv").write_text("only one column\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no valid cola rows"):
        read_glue_tsv(str(cola / "bad.tsv"), "cola")


def test_metrics_match_sklearn_and_counts():
    from sklearn.metrics import matthews_corrcoef as sk_mcc
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    p[:120] = y[:120]
    assert matthews_corrcoef(p, y) == pytest.approx(sk_mcc(y, p), abs=1e-12)
    y3, p3 = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    assert matthews_corrcoef(p3, y3) == pytest.approx(sk_mcc(y3, p3), abs=1e-12)
    assert matthews_corrcoef([1, 1], [0, 1]) == 0.0
    assert accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == 0.75
    assert distinct_n([[1, 2, 1, 2]], 1) == 0.5 and distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    st = label_statistics(np.log(np.array([[0.9, 0.1], [0.2, 0.8]])))
    assert st["confidence"] == pytest.approx(0.85) and st["batch_label_entropy"] == pytest.approx(np.log(2))


def test_demo_task_labels_follow_lexicon():
    sents, labels = D.demo_sentiment_sentences(300, seed=0)
    assert 0.3 < np.mean(labels) < 0.7
    assert D.sentence_valence("the film was not good") < 0 < D.sentence_valence("the film was not bad")
    for s, y in zip(sents, labels):
        assert (D.sentence_valence(s) > 0) == bool(y)


def test_gumbel_straight_through_forward_onehot_backward_softmax():
    n, vocab = 3, 11
    gen = TextGenerator(vocab, hidden=16, layers=1, heads=2, ffn=32, max_len=8)
    rng = np.random.default_rng(0)
    pre = rng.integers(2, vocab, (n, 4)).astype(np.int32)
    mask = np.ones_like(pre)
    g = D.gumbel_noise(rng, (n, 1, vocab))
    w = rng.normal(size=(n, 1, vocab)).astype(np.float32)
    tau = 0.6

    def f():
        y, logits, ids = gen.generate(ms.Tensor(pre), ms.Tensor(mask), ms.Tensor(g), ms.Tensor(tau, ms.float32))
        return (y * ms.Tensor(w)).sum(), (y, logits, ids)

    (_, (y, logits, ids)), (grad,) = ms.value_and_grad(f, None, ms.ParameterTuple([gen.head.bias]), has_aux=True)()
    z = logits.asnumpy()[:, 0] + g[:, 0]
    assert np.array_equal(ids.asnumpy()[:, 0], z.argmax(-1))
    np.testing.assert_allclose(y.asnumpy()[:, 0], np.eye(vocab)[z.argmax(-1)], atol=1e-6)
    # d/dbias sum_i w_i . softmax(z_i / tau) = sum_i J_i^T w_i / tau with J = diag(s) - s s^T
    s = np.exp((z - z.max(-1, keepdims=True)) / tau)
    s /= s.sum(-1, keepdims=True)
    expect = sum((s[i] * w[i, 0] - s[i] * (s[i] @ w[i, 0])) / tau for i in range(n))
    expect[[0, 1]] = 0.0  # [PAD]/[SEP] carry the -1e9 mask: softmax 0
    np.testing.assert_allclose(grad.asnumpy(), expect, rtol=1e-4, atol=1e-6)


def test_reinforce_surrogate_gradient_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3, 6)).astype(np.float32)
    ids = rng.integers(0, 6, (4, 3)).astype(np.int32)
    reward = rng.normal(size=4).astype(np.float32)
    adv = reward - reward.mean()

    def surrogate(z):
        return -(ms.Tensor(adv) * losses.sequence_log_prob(z, ms.Tensor(ids))).mean()

    grad = ms.grad(surrogate)(ms.Tensor(logits)).asnumpy()
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expect = -(adv[:, None, None] / 4) * (np.eye(6)[ids] - p)
    np.testing.assert_allclose(grad, expect, rtol=1e-5, atol=1e-7)


def test_configs_load_and_reject_bad_values():
    for name in ("demo", "sst2_gumbel", "sst2_reinforce", "cola_gumbel"):
        load_config(f"configs/dfkd_t3/{name}.yaml")
    with pytest.raises(Exception, match="grad_estimator"):
        load_config("configs/dfkd_t3/demo.yaml", ["dfkd.grad_estimator=straight"])
