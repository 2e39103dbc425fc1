#!/usr/bin/env bash
# Data-parallel training with msrun (MindSpore: HCCL on Ascend, NCCL on GPU, mccl on CPU), or
# torchrun when --framework pt is given. One machine, <n> worker processes.
#   bash scripts/run_distribute_train_ascend.sh gold_yolo 8
#   bash scripts/run_distribute_train_ascend.sh configs/x/y.yaml 2 --device CPU --set train.epochs=1
# Arguments after <n> go to scripts/train.py. The batch size of the config is the GLOBAL batch:
# each rank trains on its contiguous slice, so n processes x B/n match one process x B.
# Environment: MASTER_PORT (default: a free port), MSRUN_LOG_DIR (default: runs/msrun_logs/<time>),
#   CLUSTER_TIME_OUT (msrun --cluster_time_out, seconds, default 120),
#   DIST_TIMEOUT (outer `timeout` for the whole job, e.g. 2h; default 0 = none).
set -euo pipefail
if [ $# -lt 2 ] || [[ "$1" == -* ]] || ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
fi
target="$1"; n="$2"; shift 2
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
port="${MASTER_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
framework=ms
prev=""
for a in "$@"; do
  if [ "$prev" = "--framework" ]; then framework="$a"; fi
  case "$a" in --framework=*) framework="${a#--framework=}" ;; esac
  prev="$a"
done
if [ "$framework" = "pt" ]; then
  echo "[dist] torchrun: $n workers on 127.0.0.1:$port" >&2
  exec timeout "${DIST_TIMEOUT:-0}" torchrun --nnodes=1 --nproc_per_node="$n" --master_addr=127.0.0.1 \
    --master_port="$port" scripts/train.py --config "$target" "$@"
fi
log_dir="${MSRUN_LOG_DIR:-runs/msrun_logs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$log_dir"
echo "[dist] msrun: $n workers on 127.0.0.1:$port, worker logs in $log_dir" >&2
exec timeout "${DIST_TIMEOUT:-0}" msrun --worker_num="$n" --local_worker_num="$n" --master_addr=127.0.0.1 \
  --master_port="$port" --log_dir="$log_dir" --join=True --cluster_time_out="${CLUSTER_TIME_OUT:-120}" \
  scripts/train.py --config "$target" "$@"
