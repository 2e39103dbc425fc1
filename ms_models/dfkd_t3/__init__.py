"""DFKD-T3 (MindSpore): data-free NLP distillation with a learnable text-to-text generator.
Importing registers ``bert_minilm_l6`` (the packaged all-MiniLM-L6-v2 encoder) and
``dfkd_t3_generator``."""
from ms_models.backbones.bert import BertModel
from ms_models.registry import register_model

from .generator import TextGenerator
from .model import DFKDT3
from .pretrained import load_minilm, minilm_config


@register_model
def bert_minilm_l6(pretrained=True, **overrides):
    """all-MiniLM-L6-v2 ``BertModel``; ``pretrained`` loads the packaged weights strictly."""
    net = BertModel(minilm_config(**overrides))
    return load_minilm(net) if pretrained else net


@register_model
def dfkd_t3_generator(vocab_size=5000, **kw):
    """The causal text-to-text generator over a restricted vocabulary of ``vocab_size`` teacher ids."""
    return TextGenerator(vocab_size, **kw)


__all__ = ["DFKDT3", "TextGenerator", "bert_minilm_l6", "dfkd_t3_generator"]
