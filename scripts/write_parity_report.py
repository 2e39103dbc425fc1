"""Turn the parity record (JSON lines from parity_tests/harness.py) into a Markdown table.

    python scripts/write_parity_report.py .parity/record.jsonl --out docs/parity.md

One row per (family, level, name); when a name was measured more than once the last measurement
wins.  Rows are sorted by family, then level (forward, loss, grads, train), then name.
"""
import argparse
import json
import re
import sys
from pathlib import Path

LEVEL_ORDER = {"forward": 0, "loss": 1, "grads": 2, "train": 3}
HEADER = """# Parity report

MindSpore against the PyTorch reference on shared weights (fp32, CPU), measured by `parity_tests/`.
Tolerances (DESIGN.md): forward max abs diff <= 1e-4 * max(1, max|ref|); loss relative <= 1e-5;
grads per tensor max abs diff <= 1e-3 * max|ref grad| + 1e-6; train (loss curve and final weights)
relative <= 1e-3.  "abs" diffs are absolute, "rel" diffs are max|diff| / max|ref|.
"""


def load_records(path):
    """Rows of the JSONL record; the last row per (family, level, name) wins."""
    rows = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = (row["family"], row["level"], row["name"])
                float(row["diff"]), float(row["tolerance"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{lineno}: malformed parity record ({err})") from err
            rows[key] = row
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], LEVEL_ORDER.get(k[1], 9), _natural(k[2])))]


def _natural(name):
    # blocks.2 before blocks.10
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


FAIL_NOTE = """Rows marked FAIL are measured and recorded by tests that do not assert them, each for a
stated reason: Gold-YOLO's 5-step final weights (MindSpore's fused CPU BatchNorm drifts 10-50x further
from a float64 run than torch fp32 does; with float64 BN statistics MindSpore tracks float64 as closely
as torch fp32, yet torch fp32 itself then misses 1e-3 on one tensor: the criterion is at the float32
noise floor of that trajectory; docs/gold_yolo.md, "Training parity"), and in cfam / lightclip the
key slices of attention input biases, whose true gradient is exactly zero so that each framework's
rounding noise is scaled to full-size steps by Adam (docs/cfam.md, docs/lightclip.md). Every other
comparison is asserted by its test.
"""


def render(rows):
    """A summary per (family, level), then every comparison: family, level, name, max diff, tolerance, status."""
    failed = sum(1 for r in rows if not r["ok"])
    lines = [HEADER, f"{len(rows)} comparisons, {failed} out of tolerance.\n", FAIL_NOTE,
             "| family | level | comparisons | worst diff / tolerance | status |", "|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["family"], r["level"]), []).append(r)
    for (family, level), group in groups.items():
        worst = max(r["diff"] / r["tolerance"] if r["tolerance"] > 0 else float("inf") for r in group)
        status = "pass" if all(r["ok"] for r in group) else "**FAIL**"
        lines.append(f"| {family} | {level} | {len(group)} | {worst:.3f} | {status} |")
    lines += ["", "| family | level | name | max diff | tolerance | status |", "|---|---|---|---|---|---|"]
    for r in rows:
        metric = r.get("metric", "")
        status = "pass" if r["ok"] else "**FAIL**"
        lines.append(f"| {r['family']} | {r['level']} | {r['name']} | {r['diff']:.3e} {metric} "
                     f"| {r['tolerance']:.3e} | {status} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("record", help="JSON-lines file written via PARITY_RECORD")
    parser.add_argument("--out", default="docs/parity.md", help="Markdown file to write (default docs/parity.md)")
    args = parser.parse_args(argv)
    if not Path(args.record).is_file():
        parser.error(f"record '{args.record}' does not exist (run the parity tests with PARITY_RECORD set)")
    rows = load_records(args.record)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(rows), encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
