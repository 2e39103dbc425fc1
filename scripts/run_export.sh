#!/usr/bin/env bash
# Export a model: bash scripts/run_export.sh <family|config> [--ckpt FILE] [--format MINDIR|AIR|ONNX] [...]
# See python scripts/export.py --help.
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,3p' "$0" | sed 's/^# //'; exit 2; fi
target="$1"; shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
exec python scripts/export.py --config "$target" "$@"
