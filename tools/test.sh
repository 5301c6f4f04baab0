#!/usr/bin/env bash
# Set up (if needed) and run every test: pytest over tests/ and, through nbval, every chapter
# notebook in book/ (executed top to bottom in quick mode; cells marked NBVAL_CHECK_OUTPUT are
# compared with their stored outputs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
export HOPFIELD_LAB_QUICK=1
# The browser test (tests/test_browser.py) reads an offline build of the book in headless Chromium;
# the offline build takes MathJax, reveal.js and fonts from the npm registry. As root (CI) install
# what is missing; otherwise say so (the test then fails in one line: it never skips).
need=()
{ [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || command -v chromium >/dev/null; } || need+=(chromium)
command -v npm >/dev/null || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install -y ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "==> missing ${need[*]}: the browser test will fail (sudo apt-get install -y ${need[*]})"
  fi
fi
echo "==> python -m pytest tests book --nbval-lax --nbval-current-env $*"
set +e
python -m pytest tests book --nbval-lax --nbval-current-env \
  --nbval-sanitize-with tools/nbval_sanitize.cfg -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi
[ "$rc" -eq 0 ] || exit "$rc"
# The widget callbacks again under the ipywidgets that Colab ships (7.7.1), from a side folder
# that shadows the venv's 8.x (no second venv: torch and the rest are shared).
W7="$VENV/ipywidgets7"
if [ ! -f "$W7/ipywidgets/__init__.py" ]; then
  python -m pip install -q --no-deps --target "$W7" "ipywidgets==7.7.1" "ipython_genutils==0.2.0"
fi
echo "==> widget tests under ipywidgets 7.7.1 (Colab's)"
PYTHONPATH="$W7${PYTHONPATH:+:$PYTHONPATH}" HOPFIELD_LAB_EXPECT_IPYWIDGETS=7 \
  python -m pytest tests -k widget -p no:cacheprovider -q -W ignore::DeprecationWarning
# Every exported chapter (instructor's and student's) on Colab's package versions, the way Colab
# runs it: a side environment from tools/colab_stack.txt, the library from a built wheel, an empty
# working directory, the set-up cell's Colab branch (tools/colab_stack.py).
# one kernel at a time: a run with two kernels at once hung on chapter 6 in one of two CI runs here
bash tools/colab_stack.sh --jobs 1
