#!/usr/bin/env bash
# Run the test suite: unit/e2e tests (tests/) and cross-framework parity tests (parity_tests/).
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -k gold_yolo    # one family (arguments go to pytest)
# Creates or reuses the project venv on first use (see scripts/env.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
export PARITY_RECORD="${PARITY_RECORD:-$PWD/.parity/record.jsonl}"
mkdir -p "$(dirname "$PARITY_RECORD")"
: > "$PARITY_RECORD"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ -s "$PARITY_RECORD" ] && [ -f scripts/write_parity_report.py ]; then
  python scripts/write_parity_report.py "$PARITY_RECORD" --out .parity/parity.md >/dev/null 2>&1 || true
fi
exit $rc
