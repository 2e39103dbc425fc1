#!/usr/bin/env bash
# Convert an exported model for Ascend 310/310P/910 inference: AIR -> offline model (.om, run with
# ACL / ais_bench), MINDIR -> MindSpore Lite model for Ascend (<out>.mindir, run with the Lite runtime).
#   bash ascend/convert_offline.sh exports/gold_yolo_n.air    --soc Ascend310  [--out gold_yolo_n]
#   bash ascend/convert_offline.sh exports/gold_yolo_n.mindir --soc Ascend310P3 --input-shape images:1,3,640,640
# .air    -> CANN's atc:               atc --framework=1 --model=M --output=O --soc_version=SOC [--input_shape=S]
# .mindir -> MindSpore Lite converter: converter_lite --fmk=MINDIR --modelFile=M --outputFile=O
#                                        --optimize=ascend_oriented [--inputShape=S]  (needs the Lite package)
# Options: --soc SOC (atc's --soc_version; default Ascend310), --out NAME (default: the model's stem;
#          <stem>_ascend for MINDIR),
#          --input-shape NAME:N,C,H,W (fix a dynamic batch), --dry-run (print the command only).
# Environment: source /usr/local/Ascend/ascend-toolkit/set_env.sh first (atc), and put MindSpore
# Lite's tools/converter/converter on PATH with its lib folders on LD_LIBRARY_PATH (converter_lite).
set -euo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then usage; exit 2; fi
model="$1"; shift
soc="Ascend310"; out=""; shape=""; dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --soc) soc="${2:?--soc needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --input-shape) shape="${2:?--input-shape needs NAME:N,C,H,W}"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    *) echo "convert_offline: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
if [ ! -f "$model" ]; then echo "convert_offline: $model does not exist" >&2; exit 2; fi
if [ -n "$shape" ] && ! [[ "$shape" =~ ^[A-Za-z_][A-Za-z0-9_.]*:[0-9]+(,[0-9]+)*$ ]]; then
  echo "convert_offline: --input-shape must look like images:1,3,640,640, got '$shape'" >&2; exit 2
fi
case "${model##*.}" in
  air|AIR)
    tool=atc
    out="${out:-${model%.*}}"
    cmd=(atc --framework=1 "--model=$model" "--output=$out" "--soc_version=$soc")
    [ -n "$shape" ] && cmd+=("--input_shape=$shape")
    result="$out.om"
    hint="source /usr/local/Ascend/ascend-toolkit/set_env.sh (CANN toolkit)" ;;
  mindir|MINDIR)
    tool=converter_lite
    out="${out:-${model%.*}_ascend}"
    cmd=(converter_lite --fmk=MINDIR "--modelFile=$model" "--outputFile=$out" --optimize=ascend_oriented)
    [ -n "$shape" ] && cmd+=("--inputShape=$shape")
    result="$out.mindir"
    [ "$out" != "${model%.*}" ] || { echo "convert_offline: --out must differ from the input stem (the Lite model is also .mindir)" >&2; exit 2; }
    hint="install MindSpore Lite for Ascend and put tools/converter/converter on PATH" ;;
  *) echo "convert_offline: $model: expected a .air or .mindir file (export with scripts/run_export.sh)" >&2; exit 2 ;;
esac
if [ "$dry" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "convert_offline: '$tool' is not on PATH; $hint" >&2; exit 127
fi
"${cmd[@]}"
echo "wrote $result"
