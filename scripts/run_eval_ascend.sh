#!/usr/bin/env bash
# Evaluate a checkpoint on the best available device (Ascend, then GPU, then CPU).
#   bash scripts/run_eval_ascend.sh gold_yolo --ckpt runs/gold_yolo/<run>/best.ckpt
#   bash scripts/run_eval_ascend.sh configs/ppt/deit_small_ppt.yaml --set data.root=/data/imagenet
# Options are those of scripts/eval.py: --ckpt PATH, --device auto|Ascend|GPU|CPU, --set key=value,
#          --framework ms|pt, --out DIR, --no-ema. It prints the family's headline metric.
set -euo pipefail
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target="$1"; shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
exec python scripts/eval.py --config "$target" "$@"
