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
if [ -n "${TORCH_INDEX_URL:-}" ]; then  # e.g. https://download.pytorch.org/whl/cpu on hosted CI
  "$VENV/bin/python" -m pip install -q "$(grep -E '^torch==' requirements.txt)" --index-url "$TORCH_INDEX_URL"
fi
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
export PATH="$PWD/$VENV/bin:$PATH"
