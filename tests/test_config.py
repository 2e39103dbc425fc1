"""common.config: inheritance, overrides with type coercion, and validation messages."""
import textwrap

import pytest

from common.config import ConfigError, load_config, parse_override


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture
def family(tmp_path):
    _write(tmp_path, "base.yaml", """
        family: toy
        model: {name: resnet18, num_classes: 10, drop_path_rate: 0.0}
        train: {epochs: 3, lr: 0.1, amp: false, milestones: [1, 2]}
        extra: {}
        note: null
        _rules_:
          train.epochs: {min: 1}
          model.name: {choices: [resnet18, resnet50]}
        """)
    _write(tmp_path, "child.yaml", """
        _base_: [base.yaml]
        train: {epochs: 5}
        """)
    return tmp_path


def test_inheritance_and_overrides(family):
    cfg = load_config(family / "child.yaml", ["train.lr=0.5", "model.drop_path_rate=1", "extra.anything=[1, 2]"])
    assert cfg.train.epochs == 5            # child wins over base
    assert cfg.train.milestones == [1, 2]   # untouched keys inherited
    assert cfg.train.lr == 0.5 and isinstance(cfg.model.drop_path_rate, float)
    assert cfg.extra.anything == [1, 2]     # open section
    assert cfg.model.name == "resnet18"
    assert cfg._meta_.family == "toy"


def test_unknown_key_names_nearest(family):
    with pytest.raises(ConfigError) as e:
        load_config(family / "child.yaml", ["train.epoch=2"])
    assert "unknown key 'train.epoch'" in str(e.value) and "train.epochs" in str(e.value)
    _write(family, "bad.yaml", """
        _base_: [base.yaml]
        modle: {name: resnet50}
        """)
    with pytest.raises(ConfigError) as e:
        load_config(family / "bad.yaml")
    assert "bad.yaml" in str(e.value) and "model" in str(e.value)


def test_type_and_range_errors(family):
    with pytest.raises(ConfigError, match=r"'train.epochs' expects int.*got str"):
        load_config(family / "child.yaml", ["train.epochs=many"])
    with pytest.raises(ConfigError, match=r"'train.amp' expects bool"):
        load_config(family / "child.yaml", ["train.amp=3"])
    with pytest.raises(ConfigError, match=r"'train.epochs' = 0 is below the minimum 1"):
        load_config(family / "child.yaml", ["train.epochs=0"])
    with pytest.raises(ConfigError, match=r"choices: \['resnet18', 'resnet50'\]"):
        load_config(family / "child.yaml", ["model.name=vgg"])


def test_parse_override_and_missing_file(tmp_path):
    assert parse_override("a.b=1e-3") == ("a.b", 1e-3)
    assert parse_override("a=[1,2]") == ("a", [1, 2])
    assert parse_override("a=text") == ("a", "text")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="neither a YAML file nor a family"):
        load_config("no_such_family")
