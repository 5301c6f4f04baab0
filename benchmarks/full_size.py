"""The full-size results that chapters show beside their live quick runs, in one script.

    python benchmarks/full_size.py                      # every study, full size (CPU is fine: see README)
    python benchmarks/full_size.py ch01_capacity        # one study
    python benchmarks/full_size.py --tiny --out /tmp/x  # the same code paths in seconds (tests run this)

Each study is a function of a chapter's demos module, ``fn(tiny: bool) -> (data, settings)``,
that runs the chapter's own code at the full size; this script times it and writes
``hopfield_lab/results/full_size/<study>.json`` with the settings, the wall time and the
provenance (hardware, software, commit), atomically. The chapters read them with
``hopfield_lab.results.load("full_size/<study>.json")``. Record new runs in
``hopfield_lab/results/full_size/README.md``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from hopfield_lab import results

#: study name -> "module:function" (a chapter's demos module)
STUDIES: dict[str, str] = {
    "ch01_capacity": "hopfield_lab.demos.hopfield:full_size_capacity",
    "ch02_capacity": "hopfield_lab.demos.dense_memory:full_size_capacity",
    "ch07_large": "hopfield_lab.demos.symmetry_breaking:full_size_large",
    "ch05_metaformer": "hopfield_lab.demos.metaformer:full_size_ch05_metaformer",
}


def run(name: str, tiny: bool, out: Path | None) -> Path:
    module, func = STUDIES[name].split(":")
    fn = getattr(importlib.import_module(module), func)
    start = time.perf_counter()
    data, settings = fn(tiny=tiny)
    seconds = time.perf_counter() - start
    path = results.save(f"{name}.json", data, settings={**settings, "tiny": tiny}, seconds=seconds,
                        root=out or results.path("full_size"))
    print(f"{name}: {seconds:.1f} s -> {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="*", help=f"which studies (default: all of {sorted(STUDIES)})")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test of the code paths")
    ap.add_argument("--out", type=Path, help="output folder (default: the package's results/full_size)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.studies) - set(STUDIES))
    if unknown:
        print(f"error: unknown study {unknown}; choose from {sorted(STUDIES)}", file=sys.stderr)
        return 2
    if args.tiny and args.out is None:
        print("error: --tiny results must not overwrite the committed ones: give --out DIR", file=sys.stderr)
        return 2
    for name in args.studies or sorted(STUDIES):
        run(name, args.tiny, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
