# Sourced by tools/test.sh and tools/build_book.sh: make (or reuse) the virtual environment and
# install what the book and the tests need. VENV overrides the location (default: .venv).
set -euo pipefail
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
echo "==> installing requirements.txt and hopfield_lab (editable) into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
export PATH="$PWD/$VENV/bin:$PATH"
