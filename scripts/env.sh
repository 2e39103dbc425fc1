#!/usr/bin/env bash
# Create or reuse the project's virtual environment and put it first on PATH.
# The venv lives outside the repository, keyed by a hash of requirements/*.txt, so a change of
# pins builds a fresh one and an unchanged set is reused. Override the parent folder with
# NOAH_MS_VENV_ROOT, or the exact venv with NOAH_MS_VENV.
# Source this file: `source scripts/env.sh`.
set -euo pipefail
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_hash="$(cat "$_repo"/requirements/*.txt | sha256sum | cut -c1-12)"
_root="${NOAH_MS_VENV_ROOT:-$HOME/.cache/noah-ms/venvs}"
VENV="${NOAH_MS_VENV:-$_root/env-$_hash}"
_py="${PYTHON:-python3}"

if [ ! -f "$VENV/.complete" ]; then
  echo "[env] creating environment $VENV (requirements hash $_hash); about 8 GB, first time only" >&2
  if ! "$_py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    echo "[env] error: Python 3.11 is required (mindspore==2.10.0 wheels); '$_py' is $("$_py" --version 2>&1). Set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$_py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --progress-bar on -q --upgrade pip >&2 || true
  _log="$VENV/install.log"
  # One resolve for all pins so nothing drags in another numpy or torch.
  if ! "$VENV/bin/python" -m pip install --progress-bar on \
        -r "$_repo/requirements/ms.txt" -r "$_repo/requirements/pt.txt" -r "$_repo/requirements/dev.txt" \
        2>&1 | tee "$_log" | grep --line-buffered -E '^(Collecting|Installing|Successfully|ERROR)' >&2; then
    :
  fi
  if ! grep -q '^Successfully installed' "$_log"; then
    echo "[env] error: installing the pinned packages failed; the pip messages follow (full log: $_log)" >&2
    grep -E 'ERROR|No matching distribution|Could not find' "$_log" >&2 || tail -20 "$_log" >&2
    exit 1
  fi
  touch "$VENV/.complete"
  echo "[env] environment ready" >&2
fi
export PATH="$VENV/bin:$PATH"
# MindSpore 2.10's CPU kernels use oneDNN, which on AVX-512 machines picks a reference (naive)
# convolution for the plain NCHW layout: 150x slower than its AVX2 kernel (measured on this
# project's reference machine). Capping the ISA at AVX2 restores the fast kernels.
export DNNL_MAX_CPU_ISA="${DNNL_MAX_CPU_ISA:-AVX2}"
export ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-$DNNL_MAX_CPU_ISA}"
export VIRTUAL_ENV="$VENV"
# The checkout itself is importable (not installed), so every clone uses its own code.
export PYTHONPATH="$_repo${PYTHONPATH:+:$PYTHONPATH}"
