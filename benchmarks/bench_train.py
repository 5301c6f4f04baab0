"""Training throughput (img/s) of the CIFAR presets: full train steps (on-device augmentation,
forward, backward, AdamW), warm-up steps excluded.

    python benchmarks/bench_train.py                       # CPU or GPU, eager
    python benchmarks/bench_train.py --compile --batch-size 512 --json bench.json

Same measurement as ``python -m hopfield_lab bench``; this script adds the preset list and a
summary table. Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json

import torch

from hopfield_lab.bench import benchmark

FAMILIES = ("vanillamixer", "paramixer", "symmixer", "asymmixer")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["cifar_tiny", "cifar_small"], help="preset sizes")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), help="model families")
    p.add_argument("--batch-size", type=int, default=None, help="default: 512 on CUDA, 64 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default: 10 on CUDA, 2 on CPU)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--lam", type=float, default=1e-2, help="lambda of the AsymMixer runs (default: 1e-2)")
    p.add_argument("--device", default=None, help="cuda | cpu (default: CUDA if present)")
    p.add_argument("--json", default=None, help="write the rows to this file")
    a = p.parse_args()
    cuda = (a.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    bs = a.batch_size or (512 if cuda else 64)
    steps = a.steps or (30 if cuda else 5)
    warmup = a.warmup if a.warmup is not None else (10 if cuda else 2)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {bs}, {steps} timed steps")
    for size in a.sizes:
        for fam in a.families:
            for comp in ([False, True] if a.compile else [False]):
                name = f"{fam}_{size}"
                r = benchmark(name, batch_size=bs, steps=steps, warmup=warmup, compile=comp, device=a.device,
                              lam=a.lam if fam == "asymmixer" else None)
                rows.append(r)
                print(f"{name:26s} {'compile' if comp else 'eager':8s} {r['img_per_s']:9.1f} img/s "
                      f"{r['ms_per_step']:8.1f} ms/step {r['params'] / 1e6:6.2f} M params  {r['device']}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
