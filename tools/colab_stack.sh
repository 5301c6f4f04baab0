#!/usr/bin/env bash
# The Colab-stack check (tools/colab_stack.py says what it does): make the side environment
# .colab-venv from tools/colab_stack.txt (Colab's Python and package versions), or reuse it when
# it was made from the same list, then execute every exported chapter, instructor's and
# student's, in it the way Colab does. Extra arguments go to `colab_stack.py run` (--jobs, --keep).
# COLAB_VENV overrides the location, COLAB_PYTHON the interpreter (default: python3.13 on PATH or
# pyenv's), TORCH_INDEX_URL where torch comes from. Run by tools/test.sh; needs the project's
# environment (tools/env.sh) for `python`.
set -euo pipefail
cd "$(dirname "$0")/.."
CVENV="${COLAB_VENV:-.colab-venv}"
LOG="$CVENV.log"
fail() { echo "Colab-stack check: cannot make the side environment $CVENV: $*" >&2; exit 1; }

want_py="$(sed -n 's/^# python: //p' tools/colab_stack.txt)"
[ -n "$want_py" ] || fail "tools/colab_stack.txt has no '# python: X.Y' line"
torch_pin="$(grep -E '^torch==' requirements.txt)" || fail "requirements.txt has no torch== pin"
# the library's own dependencies (what Colab must already have: the set-up cell uses --no-deps)
deps="$(sed -n '/^dependencies = \[/,/^\]/p' pyproject.toml | grep -oE '^ *"[A-Za-z0-9_.-]+' | tr -d ' "' | grep -v '^torch$')"
stamp="$CVENV/.made-from-$( (cat tools/colab_stack.txt; echo "$torch_pin ${TORCH_INDEX_URL:-}"; echo $deps) | sha256sum | cut -c1-16)"

if [ ! -f "$stamp" ]; then
  PY=""
  for cand in ${COLAB_PYTHON:-"python$want_py" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want_py".*/bin/python 2>/dev/null | sort -rV)}; do
    got_py="$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
    if [ "$got_py" = "$want_py" ]; then PY="$cand"; break; fi
  done
  [ -n "$PY" ] || fail "no working Python $want_py (Colab's): install it (e.g. pyenv install $want_py) or set COLAB_PYTHON"
  echo "==> making the side environment $CVENV (Python $want_py, Colab's versions from tools/colab_stack.txt; log: $LOG)"
  rm -rf "$CVENV"
  {
    "$PY" -m venv "$CVENV" &&
    "$CVENV/bin/python" -m pip install -q -c tools/colab_stack.txt pip &&
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
      "$CVENV/bin/python" -m pip install -q "$torch_pin" --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple
    fi &&
    "$CVENV/bin/python" -m pip install -q -c tools/colab_stack.txt "$torch_pin" $deps ipython ipykernel
  } >"$LOG" 2>&1 || fail "pip failed: $(grep -E 'ERROR|error' "$LOG" | tail -1 || tail -1 "$LOG")"
  touch "$stamp"
fi
python tools/colab_stack.py run --venv "$CVENV" "$@"
