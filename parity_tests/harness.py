"""Shared parity harness: the four DESIGN.md levels, diff printing/recording, weight copying.

Levels (fp32, CPU), ``ref`` is the PyTorch value:

| level     | measured diff                     | passes when                                  |
|-----------|-----------------------------------|----------------------------------------------|
| forward   | max abs diff                      | <= 1e-4 * max(1, max abs ref)                |
| loss      | max abs diff / max abs ref        | <= 1e-5                                      |
| grads     | max abs diff (per tensor)         | <= 1e-3 * max abs ref + 1e-6                 |
| train     | max abs diff / max abs ref        | <= 1e-3 (loss curve and each final weight)   |

Every comparison is printed and, when the environment variable ``PARITY_RECORD`` names a file,
appended to it as one JSON line (family, level, name, diff, tolerance, metric, ok) for
``scripts/write_parity_report.py``.
"""
import json
import os
import sys

import numpy as np

LEVELS = ("forward", "loss", "grads", "train")
# Used to infer the family from a test file name (test_<family>_*.py); extend when a family is added.
FAMILIES = ("backbones", "classification", "gold_yolo", "ppt", "ofakd", "rpg", "dukd", "ift", "species196", "cfam",
            "lightclip", "dfkd_t3")


def to_numpy(value):
    """MindSpore Tensor / torch Tensor / numpy / Python number -> float64 numpy array."""
    if hasattr(value, "asnumpy"):
        value = value.asnumpy()
    elif hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def measure(ms_value, pt_value, level):
    """Return ``(diff, tolerance, metric)`` for one pair of arrays at ``level``."""
    a, b = to_numpy(ms_value), to_numpy(pt_value)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: MindSpore {a.shape} vs PyTorch {b.shape}")
    abs_diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    ref = float(np.max(np.abs(b))) if b.size else 0.0
    if level == "forward":
        return abs_diff, 1e-4 * max(1.0, ref), "abs"
    if level == "grads":
        return abs_diff, 1e-3 * ref + 1e-6, "abs"
    if level in ("loss", "train"):
        rel = abs_diff / ref if ref > 0 else (0.0 if abs_diff == 0 else float("inf"))
        return rel, (1e-5 if level == "loss" else 1e-3), "rel"
    raise ValueError(f"unknown parity level {level!r}; expected one of {LEVELS}")


def _caller_family():
    """Family named by the nearest calling test file ``test_<family>_*.py`` (longest match in FAMILIES)."""
    frame = sys._getframe(1)
    while frame is not None:
        base = os.path.basename(frame.f_code.co_filename)
        if base.startswith("test_"):
            stem = base[len("test_"):-len(".py")]
            matches = [f for f in FAMILIES if stem == f or stem.startswith(f + "_")]
            if matches:
                return max(matches, key=len)
        frame = frame.f_back
    raise ValueError(f"cannot infer the parity family from the calling test file; pass family= (one of {FAMILIES})")


def record(family, level, name, diff, tolerance, metric, ok):
    """Append one measurement to the JSONL file named by ``PARITY_RECORD`` (if set)."""
    path = os.environ.get("PARITY_RECORD")
    if not path:
        return
    row = {"family": family, "level": level, "name": name, "diff": diff, "tolerance": tolerance,
           "metric": metric, "ok": ok}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _compare(name, ms_value, pt_value, level, family):
    diff, tol, metric = measure(ms_value, pt_value, level)
    ok = diff <= tol
    print(f"[parity] {family:<10} {level:<7} {name}: {metric} diff {diff:.3e} (tol {tol:.3e}) "
          f"{'ok' if ok else 'FAIL'}")
    record(family, level, name, diff, tol, metric, ok)
    return ok, f"{family} {level} '{name}': {metric} diff {diff:.3e} exceeds {tol:.3e}"


def check_close(name, ms_value, pt_value, level, family=None):
    """Measure, print and record one comparison; return True when within tolerance."""
    return _compare(name, ms_value, pt_value, level, family or _caller_family())[0]


def assert_close(name, ms_value, pt_value, level, family=None):
    """``check_close`` that raises AssertionError when the diff exceeds the level's tolerance.

    ``family`` defaults to the one named by the calling test file (``test_<family>_*.py``).
    """
    ok, message = _compare(name, ms_value, pt_value, level, family or _caller_family())
    if not ok:
        raise AssertionError(message)


def assert_all_close(prefix, ms_values, pt_values, level, family=None):
    """Compare two ``{name: array}`` dicts entry by entry; every diff is printed before any failure.

    The key sets must be equal; the assertion lists every entry out of tolerance.
    """
    family = family or _caller_family()
    if set(ms_values) != set(pt_values):
        only_ms = sorted(set(ms_values) - set(pt_values))
        only_pt = sorted(set(pt_values) - set(ms_values))
        raise AssertionError(f"{prefix}: key sets differ; only MindSpore {only_ms}, only PyTorch {only_pt}")
    failed = [k for k in pt_values if not check_close(f"{prefix}{k}", ms_values[k], pt_values[k], level, family)]
    if failed:
        raise AssertionError(f"{family} {level}: {len(failed)} of {len(pt_values)} entries out of tolerance: "
                             f"{', '.join(prefix + k for k in failed)}")


def copy_pt_to_ms(pt_module, ms_net, hooks=None):
    """Copy a PyTorch module's state into its MindSpore twin through ``convert_state_dict`` (strict)."""
    from ms_models.utils.weights import load_pt_state_into
    from pt_reference.utils.weights import state_numpy

    load_pt_state_into(ms_net, state_numpy(pt_module), hooks=hooks)


def ms_state_as_pt(ms_net, pt_module, hooks=None):
    """MindSpore parameters renamed to the PyTorch twin's state_dict names (``{name: np.ndarray}``).

    ``num_batches_tracked`` (absent in MindSpore) comes back as 0; compare it only if meaningful.
    """
    from common.weights import convert_state_dict
    from ms_models.utils.weights import state_numpy
    from pt_reference.utils.weights import target_shapes

    return convert_state_dict(state_numpy(ms_net), target_shapes(pt_module), "ms2pt", hooks)


def randomize_norm_stats(pt_module, seed=0):
    """Give every BatchNorm non-trivial running statistics and affine parameters (numpy-seeded)."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in pt_module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, c).astype(np.float32)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c).astype(np.float32)))
                if m.affine:
                    m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)))
                    m.bias.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, c).astype(np.float32)))


class ClampDecisions:
    """Record MindSpore's ReLU / ReLU6 decisions over a run of forwards and replay them, call by
    call, in the PyTorch twin, so that a pre-activation within rounding of 0 (or 6) cannot take a
    different branch in the two frameworks (in fp32, even torch alone flips such elements between
    float32 and float64, and each flip changes the backward of everything upstream).

    Modules are matched by name (``cells_and_names`` / ``named_modules``); a module called several
    times per forward is replayed in call order. Forwards are delimited by ``begin_ms()`` /
    ``begin_pt()`` (e.g. from a wrapped ``task.forward_loss``); calls outside them (evaluation) are
    neither recorded nor replayed. Each replayed element where torch's own decision differs is
    counted in ``flips``; ``far_flips`` counts those whose torch pre-activation is further than
    ``1e-4 * max(1, max |pre|)`` (the forward tolerance) from the boundary, i.e. not a near-tie, and
    ``worst_margin`` is the largest such distance relative to that scale.
    """

    def __init__(self, ms_net, pt_module):
        import torch
        from mindspore import nn as ms_nn
        self.ms_acts = {n: c for n, c in ms_net.cells_and_names() if isinstance(c, (ms_nn.ReLU, ms_nn.ReLU6))}
        self.pt_acts = {n: m for n, m in pt_module.named_modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))}
        kinds_ms = {n: type(c).__name__ for n, c in self.ms_acts.items()}
        kinds_pt = {n: type(m).__name__ for n, m in self.pt_acts.items()}
        if kinds_ms != kinds_pt:
            raise AssertionError(f"ClampDecisions: ReLU/ReLU6 modules differ between the twins: "
                                 f"{sorted(set(kinds_ms.items()) ^ set(kinds_pt.items()))[:8]}")
        self.forwards, self.flips, self.far_flips, self.worst_margin = [], 0, 0, 0.0
        self._recording, self._replay, self._cursor, self._index = False, None, {}, None
        self.far_by = {}  # (forward index, module name) -> count of far flips
        self.handles = [c.register_forward_hook(self._ms_hook(n)) for n, c in self.ms_acts.items()]
        for name, module in self.pt_acts.items():
            module.inplace = False  # the hook needs the pre-activation
            self.handles.append(module.register_forward_hook(self._pt_hook(name)))

    @staticmethod
    def _upper(module):
        return 6.0 if type(module).__name__ == "ReLU6" else np.inf

    def begin_ms(self):
        self.forwards.append({})
        self._recording = True

    def end_ms(self):
        self._recording = False

    def begin_pt(self, index):
        self._replay, self._cursor, self._index = self.forwards[index], {}, index

    def end_pt(self):
        self._replay = None

    def _ms_hook(self, name):
        def hook(cell, inputs, output):
            if self._recording:
                pre = inputs[0].asnumpy()
                upper = self._upper(cell)
                self.forwards[-1].setdefault(name, []).append(((pre > 0) & (pre < upper), pre >= upper))
        return hook

    def _pt_hook(self, name):
        import torch

        def hook(module, inputs, output):
            if self._replay is None:
                return None
            calls = self._replay.get(name, [])
            i = self._cursor.get(name, 0)
            if i >= len(calls):
                raise AssertionError(f"ClampDecisions: torch called {name} more often than MindSpore")
            self._cursor[name] = i + 1
            keep, top = calls[i]
            pre = inputs[0]
            p = pre.detach().cpu().numpy()
            upper = self._upper(module)
            differ = (keep != ((p > 0) & (p < upper))) | (top != (p >= upper))
            if differ.any():
                scale = 1e-4 * max(1.0, float(np.abs(p).max()))
                dist = np.minimum(np.abs(p), np.abs(p - upper))[differ]
                self.flips += int(differ.sum())
                far = int((dist > scale).sum())
                self.far_flips += far
                if far:
                    self.far_by[(self._index, name)] = self.far_by.get((self._index, name), 0) + far
                self.worst_margin = max(self.worst_margin, float(dist.max()) / scale)
            out = pre * torch.from_numpy(keep).to(pre.dtype)
            if np.isfinite(upper):
                out = out + upper * torch.from_numpy(top).to(pre.dtype)
            return out
        return hook

    def stop(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []
