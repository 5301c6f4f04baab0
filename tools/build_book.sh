#!/usr/bin/env bash
# Set up (if needed) and build the book: executes every chapter (quick mode unless
# HOPFIELD_LAB_QUICK=0), fails on any failed cell or Sphinx warning. Output: _build/html, with the
# chapters' slide decks in _build/html/slides.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
# TQDM_DISABLE: a progress bar would render as an empty widget in the static pages.
# HOPFIELD_LAB_STATIC: widgets become a pointer to their static twin (nobody can move a slider there).
export HOPFIELD_LAB_QUICK="${HOPFIELD_LAB_QUICK:-1}" TQDM_DISABLE=1 HOPFIELD_LAB_STATIC=1
start=$(date +%s)
status=0
jupyter-book build . --all -W -n --keep-going || status=$?
# Jupyter Book 1.x reports a failed notebook cell as a warning and writes a log per failed
# notebook under _build/html/reports: treat any such log as a failure.
if [ -d _build/html/reports ] && [ -n "$(ls -A _build/html/reports 2>/dev/null)" ]; then
  echo "==> failed cells, see the logs:"; ls -1 _build/html/reports; status=1
fi
# one reveal.js deck per chapter, from the executed chapters the build left in _build/jupyter_execute
python tools/slides.py || status=1
# raw markup left on a rendered page ($...$, {eq}, :::, ...) is a failure too
python tools/lint_book.py html _build/html || status=1
echo "==> book build took $(( $(date +%s) - start )) s (quick mode: $HOPFIELD_LAB_QUICK), status $status"
exit "$status"
