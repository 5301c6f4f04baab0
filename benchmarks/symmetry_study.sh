#!/usr/bin/env bash
# The seeded study of spontaneous symmetry breaking (book chapter 8), through the library's own
# resumable `sweep`: rerun the same command after an interruption and finished runs are skipped.
#
#   bash benchmarks/symmetry_study.sh DATA OUT [cpu|gpu]
#
# DATA: CIFAR-10 (an ImageFolder directory or .tar.gz, or "cifar10" to let torchvision fetch it).
# cpu (default): *_cifar_cpu models (C = 128, depth 4), 10,000 training / 5,000 test images,
#   4 epochs, batch 128, two sweep processes of one thread each (about 40 min on 2 idle cores).
# gpu: the same plan at the full *_cifar_small size, all of CIFAR-10, 30 epochs, batch 512.
# The plan (41 runs): vanilla, ParaMixer, SymMixer, AsymMixer λ = 0 with seeds 0-4; AsymMixer
# λ = 1e-4 and 1e-2 with seeds 0-2; vanilla, ParaMixer and AsymMixer λ = 0 started from tied
# weights (init=tied) with seeds 0-2; ParaMixer and SymMixer with n_iter = 2, seeds 0-2.
set -euo pipefail
DATA="${1:?usage: symmetry_study.sh DATA OUT [cpu|gpu]}"
OUT="${2:?usage: symmetry_study.sh DATA OUT [cpu|gpu]}"
SIZE="${3:-cpu}"
PY="${PYTHON:-python}"
case "$SIZE" in
  cpu) P=cifar_cpu; COMMON=(--epochs 4 --train-subset 10000 --test-subset 5000 --batch-size 128 --device cpu)
       export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" ;;
  gpu) P=cifar_small; COMMON=(--epochs 30 --batch-size 512) ;;
  *) echo "error: size must be cpu or gpu, got $SIZE" >&2; exit 2 ;;
esac
COMMON+=(--dataset "$DATA" --no-progress)
sweep() { "$PY" -m hopfield_lab sweep "${COMMON[@]}" --out-dir "$OUT" "$@"; }
start=$(date +%s)
# two independent queues (each run is skipped by the other's rerun once its JSON exists)
(
  sweep --models vanillamixer_$P paramixer_$P symmixer_$P asymmixer_$P --lams 0 --seeds 0 1 2
  sweep --models vanillamixer_$P paramixer_$P asymmixer_$P --lams 0 --inits tied --seeds 0 1 2
) > "$OUT.queue1.log" 2>&1 &
q1=$!
(
  sweep --models vanillamixer_$P paramixer_$P symmixer_$P asymmixer_$P --lams 0 --seeds 3 4
  sweep --models asymmixer_$P --lams 1e-4 1e-2 --seeds 0 1 2
  sweep --models paramixer_$P symmixer_$P --n-iters 2 --seeds 0 1 2
) > "$OUT.queue2.log" 2>&1 &
q2=$!
status=0
wait $q1 || status=1
wait $q2 || status=1
echo "symmetry study ($SIZE) finished in $(( $(date +%s) - start )) s, status $status; logs: $OUT.queue{1,2}.log"
exit $status
