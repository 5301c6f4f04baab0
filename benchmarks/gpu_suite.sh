#!/usr/bin/env bash
# One command for a GPU session: throughput ours vs official, the 30-epoch study, extras, summary.
#
#   bash benchmarks/gpu_suite.sh DATA OUT [options]         # one GPU, within 9 minutes
#   bash benchmarks/gpu_suite.sh --tiny synthetic OUT        # the same code paths on CPU (~1 minute)
#
# DATA: the CIFAR-10 archive in ImageFolder layout (.tar.gz), e.g. copied beforehand into the
# git-ignored .gpu/ folder that travels with the run:
#   mkdir -p .gpu && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/
# The official code (optional, for the side-by-side throughput) is looked for in the git-ignored
# .official/ folder: .official/paramixer (git archive of Toshihiro-Ota/paramixer) and
# .official/timm_site (pip install --no-deps --target .official/timm_site timm==0.9.2).
# Options: see `python benchmarks/gpu_suite.py --help` (--budget, --workers, --bundle FILE, ...).
# Relative paths are taken from the current folder. PYTHON picks the interpreter (default python3).
# A machine without .git: set HOPFIELD_LAB_GIT_COMMIT so that every record names the commit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -z "${HOPFIELD_LAB_GIT_COMMIT:-}" ] && commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null); then
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+dirty"; fi
  export HOPFIELD_LAB_GIT_COMMIT="$commit"
fi
exec "${PYTHON:-python3}" "$ROOT/benchmarks/gpu_suite.py" "$@"
