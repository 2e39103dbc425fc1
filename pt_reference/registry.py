"""Model registry: ``@register_model`` on a builder function, ``create_model(name, **kw)``.

The MindSpore tree has a registry with the same names (``ms_models.registry``), so a
config names one model and both frameworks build their twin of it.
"""
from difflib import get_close_matches

_MODELS = {}


def register_model(fn=None, *, name=None):
    """Register a builder under ``name`` (default: the function name)."""
    def wrap(f):
        key = name or f.__name__
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError(f"model '{key}' is registered twice ({_MODELS[key].__module__} and {f.__module__})")
        _MODELS[key] = f
        return f
    return wrap(fn) if fn is not None else wrap


def _import_families():
    # Importing the family packages runs their @register_model decorators.
    import importlib
    import importlib.util
    for mod in _FAMILY_MODULES:
        name = f"{__package__}.{mod}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


_FAMILY_MODULES = ("backbones", "classification", "gold_yolo", "ppt", "ofakd", "rpg", "dukd", "ift", "species196",
                   "cfam", "lightclip", "dfkd_t3")


def list_models(pattern=None):
    """Sorted registered names; ``pattern`` is an fnmatch filter such as ``'gold_yolo_*'``."""
    import fnmatch
    _import_families()
    names = sorted(_MODELS)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def create_model(name, **kwargs):
    """Build the registered model ``name`` with keyword arguments ``kwargs``."""
    _import_families()
    if name not in _MODELS:
        near = get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"unknown model '{name}'{hint} (see list_models())")
    return _MODELS[name](**kwargs)
