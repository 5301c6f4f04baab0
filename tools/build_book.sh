#!/usr/bin/env bash
# Set up (if needed) and build the book: executes every chapter (quick mode unless
# HOPFIELD_LAB_QUICK=0), fails on any failed cell or Sphinx warning. Output: _build/html, with the
# chapters' slide decks in _build/html/slides.
# HOPFIELD_LAB_OFFLINE=1: the build serves its own MathJax, reveal.js, icons and fonts (taken from
# the npm registry at build time, see tools/offline.py): readable without a network.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
# TQDM_DISABLE: a progress bar would render as an empty widget in the static pages.
# HOPFIELD_LAB_STATIC: widgets become a pointer to their static twin (nobody can move a slider there).
export HOPFIELD_LAB_QUICK="${HOPFIELD_LAB_QUICK:-1}" TQDM_DISABLE=1 HOPFIELD_LAB_STATIC=1
# Every figure the kernels draw records its smallest text size and any raw TeX-style _/^ of its
# texts in its PNG (tools/figure_audit.py, loaded at kernel start-up), for tools/browser_check.py.
export IPYTHONDIR="$PWD/_build/ipython"
python tools/figure_audit.py --ipython-dir "$IPYTHONDIR" >/dev/null
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
if [ "${HOPFIELD_LAB_OFFLINE:-0}" = 1 ]; then
  python tools/offline.py localize _build/html || status=1
fi
# raw markup left on a rendered page ($...$, {eq}, :::, ...) is a failure too
python tools/lint_book.py html _build/html || status=1
echo "==> read it in a browser: python tools/browser_check.py _build/html (offline builds only: it blocks the network)"
echo "==> book build took $(( $(date +%s) - start )) s (quick mode: $HOPFIELD_LAB_QUICK), status $status"
exit "$status"
