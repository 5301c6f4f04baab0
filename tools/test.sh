#!/usr/bin/env bash
# Set up (if needed) and run every test: pytest over tests/ and, through nbval, every chapter
# notebook in book/ (executed top to bottom in quick mode; cells marked NBVAL_CHECK_OUTPUT are
# compared with their stored outputs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
export HOPFIELD_LAB_QUICK=1
echo "==> python -m pytest tests book --nbval-lax --nbval-current-env $*"
set +e
python -m pytest tests book --nbval-lax --nbval-current-env \
  --nbval-sanitize-with tools/nbval_sanitize.cfg -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi
exit "$rc"
