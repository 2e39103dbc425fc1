"""YAML configs with ``_base_`` inheritance, ``--set`` overrides and validation.

A family's root file (``configs/<family>/base.yaml``, the one without ``_base_``) declares every
valid key with its default; children may only set declared keys. The type of a value must match
the type of its default (an int is accepted where a float is declared; a ``null`` default accepts
anything). ``_rules_`` in any file adds ranges and choices:

    _rules_:
      train.epochs: {min: 1}
      model.variant: {choices: [n, s, m, l]}

Keys whose default is an empty mapping (``{}``) are open: any sub-key may be added there.
"""
import copy
import difflib
import os
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_ROOT = REPO_ROOT / "configs"


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file, key and what is allowed."""


class Config(dict):
    """A nested dict with attribute access (``cfg.train.epochs``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key '{key}' (keys: {', '.join(sorted(self))})") from None

    def __setattr__(self, key, value):
        self[key] = value

    def __deepcopy__(self, memo):
        return Config({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def get_path(self, dotted, default=None):
        node = self
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def to_dict(self):
        return _plain(self)


def _plain(node):
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _wrap(node):
    if isinstance(node, dict):
        return Config({k: _wrap(v) for k, v in node.items()})
    if isinstance(node, list):
        return [_wrap(v) for v in node]
    return node


def resolve_config_path(path_or_family):
    """A YAML path, or a family name meaning ``configs/<family>/demo.yaml``."""
    p = Path(path_or_family)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists() and (REPO_ROOT / p).exists():
            p = REPO_ROOT / p
        if not p.exists():
            raise ConfigError(f"config file not found: {path_or_family}")
        return p.resolve()
    family_dir = CONFIG_ROOT / str(path_or_family)
    if family_dir.is_dir() and (family_dir / "demo.yaml").exists():
        return (family_dir / "demo.yaml").resolve()
    families = sorted(d.name for d in CONFIG_ROOT.iterdir() if d.is_dir()) if CONFIG_ROOT.is_dir() else []
    near = difflib.get_close_matches(str(path_or_family), families, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ConfigError(f"'{path_or_family}' is neither a YAML file nor a family with configs/<family>/demo.yaml"
                      f"{hint} (families: {', '.join(families) or 'none'})")


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _flatten(node, prefix=""):
    out = {}
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _type_name(v):
    return "null" if v is None else type(v).__name__


def _check_type(key, default, value, origin):
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, list):
            return value
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ConfigError(f"{origin}: key '{key}' expects {_type_name(default)} (default {default!r}), "
                      f"got {_type_name(value)} {value!r}")


class _Schema:
    def __init__(self, root_file, data):
        self.root_file = root_file
        self.defaults = _flatten(data)
        self.open_prefixes = {k for k, v in self.defaults.items() if isinstance(v, dict) and not v}
        self.sections = set()
        for k in self.defaults:
            parts = k.split(".")
            for i in range(1, len(parts)):
                self.sections.add(".".join(parts[:i]))

    def check(self, key, value, origin):
        if key in self.defaults:
            return _check_type(key, self.defaults[key], value, origin)
        if any(key.startswith(p + ".") for p in self.open_prefixes):
            return value
        if key in self.sections and isinstance(value, dict):
            return value
        valid = sorted(set(self.defaults) | self.sections)
        near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
        leaf = key.split(".")[-1]
        near += [v for v in valid if v.split(".")[-1] == leaf and v not in near][:3]
        hint = f"; nearest valid keys: {', '.join(near)}" if near else ""
        raise ConfigError(f"{origin}: unknown key '{key}'{hint} (valid keys are declared in {self.root_file})")


def _merge_checked(dst, src, schema, origin, prefix=""):
    for k, v in src.items():
        if k in ("_base_", "_rules_") and not prefix:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not any(key == p for p in schema.open_prefixes):
            schema.check(key, v, origin)
            if not isinstance(dst.get(k), dict):
                dst[k] = {}
            _merge_checked(dst[k], v, schema, origin, key + ".")
        else:
            dst[k] = copy.deepcopy(schema.check(key, v, origin))


def _load_chain(path, seen):
    """Files from the root to ``path`` in merge order, and the merged rules."""
    path = Path(path).resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle through {' -> '.join(str(s) for s in seen)}")
    data = _read_yaml(path)
    bases = data.get("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{path}: _base_ must be a list of relative paths")
    chain = []
    for b in bases:
        bp = (path.parent / b)
        if not bp.exists():
            raise ConfigError(f"{path}: _base_ entry '{b}' not found (looked for {bp})")
        for item in _load_chain(bp, seen + [path]):
            if item[0] not in [c[0] for c in chain]:
                chain.append(item)
    chain.append((path, data))
    return chain


def _check_rules(cfg, rules, origin):
    for key, rule in rules.items():
        value = cfg.get_path(key)
        if value is None:
            continue
        if "choices" in rule and value not in rule["choices"]:
            raise ConfigError(f"{origin}: key '{key}' = {value!r} is not allowed; choices: {rule['choices']}")
        if "min" in rule and value < rule["min"]:
            raise ConfigError(f"{origin}: key '{key}' = {value!r} is below the minimum {rule['min']}")
        if "max" in rule and value > rule["max"]:
            raise ConfigError(f"{origin}: key '{key}' = {value!r} is above the maximum {rule['max']}")
        if "gt" in rule and not value > rule["gt"]:
            raise ConfigError(f"{origin}: key '{key}' = {value!r} must be greater than {rule['gt']}")


def parse_override(text):
    """``'a.b=3'`` -> ``('a.b', 3)``; the value is read as a YAML scalar or list."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (e.g. train.epochs=3)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads '1e-3' as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def load_config(path_or_family, overrides=()):
    """Load, merge, override and validate a config; returns a :class:`Config`.

    ``overrides`` are ``'key.sub=value'`` strings (from ``--set``).
    """
    path = resolve_config_path(path_or_family)
    chain = _load_chain(path, [])
    root_file, root_data = chain[0]
    schema = _Schema(root_file, {k: v for k, v in root_data.items() if k not in ("_base_", "_rules_")})
    merged, rules = {}, {}
    for f, data in chain:
        _merge_checked(merged, data, schema, str(f))
        rules.update(data.get("_rules_", {}) or {})
    for text in overrides:
        key, value = parse_override(text)
        value = schema.check(key, value, f"--set {text}")
        node = merged
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    cfg = _wrap(merged)
    _check_rules(cfg, rules, f"{path} (after overrides)" if overrides else str(path))
    cfg["_meta_"] = Config(config_path=str(path), overrides=list(overrides),
                           family=cfg.get("family") or path.parent.name)
    return cfg


def dump_config(cfg, path):
    """Write ``cfg`` as YAML atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(_plain(cfg), f, sort_keys=False)
    os.replace(tmp, path)
