#!/usr/bin/env bash
# Train a family or a config on the best available device (Ascend, then GPU, then CPU).
#   bash scripts/run_train_ascend.sh gold_yolo
#   bash scripts/run_train_ascend.sh configs/gold_yolo/gold_yolo_s.yaml --set data.root=/data/coco
#   bash scripts/run_train_ascend.sh classification --device CPU --set train.epochs=2 --resume auto
# Options: --device auto|Ascend|GPU|CPU, --set key=value (repeatable), --resume PATH|auto,
#          --framework ms|pt (default ms), --run-dir DIR.
# With no dataset configured, the family's built-in demo data is used (the script says so).
# It ends by evaluating and printing the headline metric; the run folder holds the config
# snapshot, log, metrics JSON, checkpoints and a loss-curve PNG.
set -euo pipefail
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target="$1"; shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
exec python scripts/train.py --config "$target" "$@"
