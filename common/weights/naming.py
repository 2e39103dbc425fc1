"""PyTorch <-> MindSpore state_dict conversion driven by the target network's names and shapes.

The generic rules (DESIGN.md, "Naming is the contract"), applied to the last name component:

    PyTorch                      MindSpore ``nn``
    BN   weight / bias           gamma / beta
    BN   running_mean / _var     moving_mean / moving_variance
    BN   num_batches_tracked     (absent: dropped pt2ms, restored as int64 0 ms2pt)
    LayerNorm/GroupNorm weight   gamma           (bias -> beta)
    Embedding weight             embedding_table
    PReLU weight                 a
    Conv1d weight (out, in, k)   (out, in, 1, k)

The target network decides which rule applies: for every target key the converter looks for the
source key that the rules map onto it, exact name first.  Family-specific exceptions are
``hooks``: callables ``hook(state, target_shapes, direction) -> state`` applied in order to the
source state before the generic rules.
"""
import numpy as np

DIRECTIONS = ("pt2ms", "ms2pt")

# target leaf name -> source leaf names that map onto it, in order of preference
_PT2MS_LEAF = {
    "gamma": ("weight",),
    "beta": ("bias",),
    "moving_mean": ("running_mean",),
    "moving_variance": ("running_var",),
    "embedding_table": ("weight",),
    "a": ("weight",),
}
_MS2PT_LEAF = {
    "weight": ("gamma", "embedding_table", "a"),
    "bias": ("beta",),
    "running_mean": ("moving_mean",),
    "running_var": ("moving_variance",),
}
_NUM_BATCHES = "num_batches_tracked"


class WeightMismatchError(ValueError):
    """Source and target state disagree; lists every missing, unexpected and mis-shaped key.

    Attributes:
        missing: ``[(target_key, target_shape)]`` with no source value.
        unexpected: ``[(source_key, source_shape)]`` that no target key uses.
        mismatched: ``[(target_key, target_shape, source_key, source_shape)]``.
    """

    def __init__(self, missing=(), unexpected=(), mismatched=(), context=""):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        lines = [f"weights do not match{' ' + context if context else ''}: "
                 f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                 f"{len(self.mismatched)} mis-shaped"]
        lines += [f"  missing     {k} {tuple(s)}" for k, s in self.missing]
        lines += [f"  unexpected  {k} {tuple(s)}" for k, s in self.unexpected]
        lines += [f"  mis-shaped  {tk}: target {tuple(ts)}, source {sk} {tuple(ss)}"
                  for tk, ts, sk, ss in self.mismatched]
        super().__init__("\n".join(lines))


def _split(key):
    head, _, leaf = key.rpartition(".")
    return (head + "." if head else ""), leaf


def _source_candidates(target_key, direction):
    prefix, leaf = _split(target_key)
    table = _PT2MS_LEAF if direction == "pt2ms" else _MS2PT_LEAF
    return [target_key] + [prefix + alt for alt in table.get(leaf, ())]


def _fit_layout(value, target_shape, direction):
    """Return ``value`` in the target layout, or None when the shapes are incompatible."""
    shape = tuple(value.shape)
    if shape == tuple(target_shape):
        return value
    # Conv1d: torch (out, in, k) <-> MindSpore (out, in, 1, k)
    if direction == "pt2ms" and value.ndim == 3 and tuple(target_shape) == shape[:2] + (1,) + shape[2:]:
        return np.expand_dims(value, -2)
    if (direction == "ms2pt" and value.ndim == 4 and shape[2] == 1
            and tuple(target_shape) == shape[:2] + shape[3:]):
        return np.squeeze(value, -2)
    return None


def convert_state_dict(src, target_shapes, direction="pt2ms", hooks=None, strict=True):
    """Map ``src`` onto the keys of ``target_shapes`` with the generic rules plus ``hooks``.

    Args:
        src: ``{name: np.ndarray}`` in the source framework's naming.
        target_shapes: ``{name: shape tuple}`` of every entry of the target network
            (MindSpore ``parameters_dict()`` for pt2ms, torch ``state_dict()`` for ms2pt).
        direction: ``'pt2ms'`` or ``'ms2pt'``.
        hooks: sequence of ``hook(state, target_shapes, direction) -> state`` applied first.
        strict: when False, missing and unexpected keys are tolerated (mis-shaped never are).

    Returns:
        ``{target_name: np.ndarray}``; arrays keep their dtype (a restored
        ``num_batches_tracked`` is ``np.int64(0)``).

    Raises:
        WeightMismatchError: listing every missing, unexpected and mis-shaped key.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    state = {k: np.asarray(v) for k, v in src.items()}
    for hook in hooks or ():
        state = hook(state, target_shapes, direction)
    out, used, missing, mismatched = {}, set(), [], []
    for tkey, tshape in target_shapes.items():
        tshape = tuple(tshape)
        skey = next((c for c in _source_candidates(tkey, direction) if c in state and c not in used), None)
        if skey is None:
            if direction == "ms2pt" and _split(tkey)[1] == _NUM_BATCHES:
                out[tkey] = np.zeros(tshape, dtype=np.int64)
            else:
                missing.append((tkey, tshape))
            continue
        used.add(skey)
        value = _fit_layout(state[skey], tshape, direction)
        if value is None:
            mismatched.append((tkey, tshape, skey, tuple(state[skey].shape)))
        else:
            out[tkey] = value
    unexpected = [(k, tuple(v.shape)) for k, v in state.items()
                  if k not in used and not (direction == "pt2ms" and _split(k)[1] == _NUM_BATCHES)]
    if mismatched or (strict and (missing or unexpected)):
        raise WeightMismatchError(missing if strict else (), unexpected if strict else (), mismatched,
                                  context=f"({direction})")
    return out


def rename_hook(pairs):
    """Hook replacing literal name fragments, given as ``(pt_fragment, ms_fragment)`` pairs.

    pt2ms replaces each ``pt_fragment`` by its ``ms_fragment``; ms2pt does the reverse, so one
    hook serves both directions.  Example: ``rename_hook([('.norm.weight', '.norm.gamma')])``.
    """
    pairs = list(pairs)

    def hook(state, target_shapes, direction):
        rules = pairs if direction == "pt2ms" else [(ms, pt) for pt, ms in pairs]
        renamed = {}
        for key, value in state.items():
            for old, new in rules:
                key = key.replace(old, new)
            renamed[key] = value
        return renamed

    return hook
