"""DFKD-T3 in deploy form: the student classifier alone (``scripts/export.py``, ``ascend/infer.py``).

The generator, its frozen copy and the teacher are training-only and are not exported. The graph maps
``input_ids`` int32 (B, L) (WordPiece ids < 30522, ``[CLS] ... [SEP]`` right-padded with ``[PAD]``)
and ``attention_mask`` int32 (B, L) (1 = token, 0 = padding) to logits float32 (B, num_labels), with
L = ``data.max_len``; token types are all 0 inside the model, so there is no ``token_type_ids`` input.

MINDIR with an open batch axis runs (tests/test_dfkd_t3_export.py, batches 5 and 7). ONNX is not
possible: the student's exact (erf) GELU becomes MindSpore's ``Erf`` op, which has no ONNX converter
in MindSpore 2.10, so ``scripts/export.py --format ONNX`` exits 2 naming ``Erf``.
"""
from ms_models.backbones.bert import BertForSequenceClassification

from .pretrained import load_minilm, minilm_config

STUDENT_PREFIX = "student."


def student_weights(weights):
    """The student's parameters in ``weights``: the ``student.*`` names of a DFKD-T3 checkpoint with the
    prefix dropped (generator, teacher and step counters are left out), or a student-only dict as it is."""
    sub = {k[len(STUDENT_PREFIX):]: v for k, v in weights.items() if k.startswith(STUDENT_PREFIX)}
    if sub:
        return sub
    if any(k.startswith(("teacher.", "generator.")) for k in weights):
        raise ValueError("dfkd_t3 export: the weights hold teacher/generator parameters but no 'student.*' ones; "
                         "pass a DFKD-T3 training checkpoint or a student weight file")
    return weights


def build_export_net(cfg, weights=None):
    """``(student, inputs, dynamic_batch_ok=True)`` for ``cfg`` with ``weights`` (MindSpore names, a
    full DFKD-T3 checkpoint or the student alone) loaded strictly; ``None``: the task's initial student
    (MiniLM layers per ``model.student_init``, seeded classifier).

    ``inputs`` are the typed specs ``input_ids`` / ``attention_mask`` int32 of length ``data.max_len``.
    Dropout is left out (identity in eval mode either way); parameter names equal the task's student.
    """
    from ms_models.utils.weights import load_numpy_state

    m = cfg.model
    bert_cfg = minilm_config(num_hidden_layers=int(m.student_layers), hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0)
    length = int(cfg.data.max_len)
    if length > bert_cfg.max_position_embeddings:
        raise ValueError(f"data.max_len={length} exceeds the student's {bert_cfg.max_position_embeddings} "
                         "position embeddings")
    net = BertForSequenceClassification(bert_cfg, int(m.num_labels))
    if weights is not None:
        load_numpy_state(net, student_weights(weights), strict=True)
    elif m.student_init == "minilm":
        load_minilm(net.bert)
    net.set_train(False)
    inputs = [{"name": "input_ids", "shape": [length], "dtype": "int32", "high": int(bert_cfg.vocab_size)},
              {"name": "attention_mask", "shape": [length], "dtype": "int32", "high": 2}]
    return net, inputs, True


def infer_overrides(cfg, shape):
    """Tokenise to the graph's sequence length: ``shape`` is the per-sample shape ``[L]`` of
    ``input_ids``; returns ``['data.max_len=L']`` when the config differs."""
    length = int(shape[-1])
    return [] if length == int(cfg.data.max_len) else [f"data.max_len={length}"]
