"""Execute every chapter top to bottom in a fresh kernel, in full (or quick) mode, and time it.

    python benchmarks/run_chapters.py --mode full --out results_dir     # on a GPU machine
    python benchmarks/run_chapters.py --mode quick                       # the same path on a CPU

Writes ``<out>/chapter_times_<device>_<mode>.json`` (one record per chapter: seconds, ok, the
error's last line, device, torch version) and prints a table. Exits non-zero if any chapter
failed, after running all of them (one broken chapter does not hide the others' times).
``benchmarks/run_chapters.sh`` is the same with the repository's defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def run_one(path: Path, mode: str, timeout: int) -> dict:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    os.environ["HOPFIELD_LAB_QUICK"] = "1" if mode == "quick" else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    start = time.perf_counter()
    ok, error = True, None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except (CellExecutionError, CellTimeoutError) as err:
        ok, error = False, str(err).strip().splitlines()[-1][:500]
    return {"chapter": path.stem, "mode": mode, "seconds": round(time.perf_counter() - start, 1),
            "ok": ok, "error": error}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("full", "quick"), default="full")
    ap.add_argument("--book", type=Path, default=ROOT / "book", help="folder of NN_*.ipynb chapters")
    ap.add_argument("--only", nargs="*", default=None, help="chapter names or numbers (default: all)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--out", type=Path, default=None, help="where to write the JSON (default: print only)")
    args = ap.parse_args(argv)

    import torch

    from hopfield_lab.runtime import device_name

    chapters = sorted(args.book.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        chapters = [c for c in chapters if any(c.stem == o or c.stem.startswith(f"{int(o):02d}_")
                                                if o.isdigit() else c.stem == o for o in args.only)]
    if not chapters:
        print(f"error: no chapters to run in {args.book}", file=sys.stderr)
        return 2
    device = device_name()
    records = []
    for path in chapters:
        print(f"==> {path.stem} ({args.mode} mode on {device})", flush=True)
        rec = run_one(path, args.mode, args.timeout)
        rec.update(device=device, torch_version=torch.__version__)
        records.append(rec)
        print(f"    {'ok' if rec['ok'] else 'FAILED'} in {rec['seconds']:.1f} s" +
              (f": {rec['error']}" if rec["error"] else ""), flush=True)
        if args.out:  # written after every chapter: a killed run keeps what finished
            args.out.mkdir(parents=True, exist_ok=True)
            name = f"chapter_times_{device.replace(' ', '_')}_{args.mode}.json"
            (args.out / name).write_text(json.dumps(records, indent=1) + "\n")
    total = sum(r["seconds"] for r in records)
    print(f"{'chapter':<28} {'seconds':>8}  status")
    for r in records:
        print(f"{r['chapter']:<28} {r['seconds']:>8.1f}  {'ok' if r['ok'] else 'FAILED'}")
    print(f"{'total':<28} {total:>8.1f}")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
