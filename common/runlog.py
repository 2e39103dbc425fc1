"""Run folder, log file, metrics files and the progress bar (framework-free).

A run folder ``runs/<family>/<YYYYmmdd-HHMMSS>_<config>/`` holds ``config.yaml`` (snapshot),
``train.log``, ``metrics.jsonl`` (one JSON object per step and per evaluation), ``metrics.json``
(final metrics), checkpoints and ``loss_curve.png``.
"""
import itertools
import json
import logging
import math
import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from common.atomic import atomic_path
from common.config import dump_config


def run_parent(cfg, family):
    """Folder holding a family's runs: ``train.output_dir`` if set, else ``runs/<family>``."""
    out = (cfg.get("train") or {}).get("output_dir") if hasattr(cfg, "get") else None
    return Path(out) if out else Path("runs") / family


def make_run_dir(parent, config_name, now=None, create=True):
    """``parent/<YYYYmmdd-HHMMSS>_<config_name>`` (a ``-N`` suffix keeps it unique), created unless
    ``create`` is False (data-parallel ranks other than 0 only need the path)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = Path(parent) / f"{stamp}_{config_name}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    if create:
        path.mkdir(parents=True)
    return path


def find_latest_run(parent, config_name, ckpt_name="last.ckpt"):
    """Newest run folder of ``config_name`` under ``parent`` holding ``ckpt_name``, or None."""
    folder = Path(parent)
    if not folder.is_dir():
        return None
    pattern = re.compile(rf"\d{{8}}-\d{{6}}_{re.escape(config_name)}(-\d+)?")
    runs = [p for p in folder.iterdir()
            if p.is_dir() and pattern.fullmatch(p.name) and (p / ckpt_name).exists()]
    return max(runs, key=lambda p: (p / ckpt_name).stat().st_mtime) if runs else None


def write_json_atomic(path, obj):
    """Write ``obj`` as indented JSON via a temp file in the same folder and ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=_json_default)


def read_jsonl(path):
    """All records of a ``.jsonl`` file (an empty list if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_or_str(v):
    return v if not isinstance(v, float) or math.isfinite(v) else str(v)


class _TqdmHandler(logging.Handler):
    """Console handler that does not tear an active progress bar."""

    def emit(self, record):
        tqdm.write(self.format(record), file=sys.stderr)


_LOGGER_IDS = itertools.count()


class RunLog:
    """Log file, console, ``metrics.jsonl`` and final ``metrics.json`` of one run.

    With ``enabled=False`` (data-parallel ranks other than 0) nothing is written to the run folder
    and only warnings reach the console.
    """

    def __init__(self, run_dir, enabled=True, name="train"):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.logger = logging.getLogger(f"noah.{name}.{next(_LOGGER_IDS)}")
        self.logger.setLevel(logging.INFO if enabled else logging.WARNING)
        self.logger.propagate = False
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        console = _TqdmHandler()
        console.setFormatter(fmt)
        self.logger.addHandler(console)
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(self.run_dir / f"{name}.log", encoding="utf-8")
            fh.setFormatter(fmt)
            self.logger.addHandler(fh)

    def info(self, msg):
        self.logger.info(msg)

    def warning(self, msg):
        self.logger.warning(msg)

    def error(self, msg):
        self.logger.error(msg)

    def close(self):
        for h in list(self.logger.handlers):
            h.close()
            self.logger.removeHandler(h)

    def save_config(self, cfg):
        if self.enabled:
            dump_config(cfg, self.run_dir / "config.yaml")

    def log_metrics(self, record):
        """Append one record (a dict of JSON-able values) to ``metrics.jsonl``."""
        if not self.enabled:
            return
        rec = {k: _finite_or_str(v) for k, v in record.items()}
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, default=_json_default) + "\n")

    def truncate_metrics(self, after_step):
        """Drop records with ``step > after_step`` (a resumed run re-logs those steps)."""
        if not self.enabled or not self.metrics_path.exists():
            return
        keep = [r for r in read_jsonl(self.metrics_path) if r.get("step", 0) <= after_step]
        with atomic_path(self.metrics_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for r in keep:
                f.write(json.dumps(r) + "\n")

    def write_final(self, metrics):
        if self.enabled:
            write_json_atomic(self.run_dir / "metrics.json", metrics)

    def progress(self, total, initial, desc):
        """A tqdm bar (a disabled one on ranks other than 0)."""
        return tqdm(total=total, initial=initial, desc=desc, disable=not self.enabled, leave=False,
                    dynamic_ncols=True, file=sys.stderr)
