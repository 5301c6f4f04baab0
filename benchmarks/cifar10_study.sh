#!/usr/bin/env bash
# The CIFAR-10 symmetry-breaking study that book chapter 8 plots (hopfield_lab/results/cifar10/*.json).
#
#   bash benchmarks/cifar10_study.sh DATA OUT_DIR [EPOCHS] [extra sweep options...]
#
# DATA: "cifar10" (torchvision download) or the path of an ImageFolder folder / .tar.gz of one.
# Trains vanilla, ParaMixer, SymMixer and AsymMixer(lambda) at 32 px (patch 4, C=256, depth 8),
# AdamW 1e-3 one-cycle, batch 512, label smoothing 0.1, flip + reflect-pad-4 crop on the device,
# bf16 autocast: the 30-epoch set-up of book chapter 8 (hopfield_lab/results/cifar10/README.md), with fewer epochs to fit a short GPU lease.
# Re-running the same command continues an interrupted sweep. SIZE=tiny gives a CPU smoke test.
set -euo pipefail
DATA=${1:?usage: cifar10_study.sh DATA OUT_DIR [EPOCHS] [sweep options]}
OUT=${2:?usage: cifar10_study.sh DATA OUT_DIR [EPOCHS] [sweep options]}
EPOCHS=${3:-15}
shift $(( $# < 3 ? $# : 3 ))
SIZE=${SIZE:-small}
PY=${PYTHON:-python}
"$PY" -m hopfield_lab sweep \
  --models "vanillamixer_cifar_$SIZE" "paramixer_cifar_$SIZE" "symmixer_cifar_$SIZE" "asymmixer_cifar_$SIZE" \
  --lams 0 1e-5 1e-4 1e-3 1e-2 1e-1 \
  --dataset "$DATA" --epochs "$EPOCHS" --batch-size 512 --lr 1e-3 --schedule onecycle \
  --weight-decay 0.05 --label-smoothing 0.1 --out-dir "$OUT" --no-progress "$@"
