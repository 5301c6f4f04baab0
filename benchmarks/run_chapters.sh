#!/usr/bin/env bash
# Every chapter top to bottom in full mode (a GPU machine), with per-chapter wall times:
#   bash benchmarks/run_chapters.sh [OUT_DIR] [--mode quick] [--only 05 08]
# Writes OUT_DIR/chapter_times_<device>_<mode>.json; fails if any chapter fails.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results_run}
shift $(( $# > 0 ? 1 : 0 ))
exec "${PYTHON:-python}" benchmarks/run_chapters.py --out "$OUT" "$@"
