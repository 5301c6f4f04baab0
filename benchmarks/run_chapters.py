"""Execute every chapter top to bottom in a fresh kernel, in full (or quick) mode, and time it.

    python benchmarks/run_chapters.py --mode full --out results_dir     # on a GPU machine
    python benchmarks/run_chapters.py --mode quick                       # the same path on a CPU

Writes ``<out>/chapter_times_<device>_<mode>.json`` (one record per chapter: wall seconds, the
kernel's CPU seconds, the load average before and after, ok, the error's last line, and where it
ran: device, CPU, versions, commit) and prints a table. Exits non-zero if any chapter failed,
after running all of them (one broken chapter does not hide the others' times).
``benchmarks/run_chapters.sh`` is the same with the repository's defaults.

The instructor's guide shows the committed quick-mode times (``hopfield_lab/results/
chapter_times/``); its table is this script's ``--guide-table`` output (a test compares)::

    python benchmarks/run_chapters.py --mode quick --out hopfield_lab/results/chapter_times
    python benchmarks/run_chapters.py --guide-table    # paste over the guide's table
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
#: the committed quick-mode times that the instructor's guide shows
GUIDE_TIMES = ROOT / "hopfield_lab" / "results" / "chapter_times" / "chapter_times_cpu_quick.json"


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children (the kernels)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_one(path: Path, mode: str, timeout: int) -> dict:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    os.environ["HOPFIELD_LAB_QUICK"] = "1" if mode == "quick" else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    load_start, cpu_start = os.getloadavg()[0], _children_cpu()
    start = time.perf_counter()
    ok, error = True, None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except (CellExecutionError, CellTimeoutError) as err:
        ok, error = False, str(err).strip().splitlines()[-1][:500]
    seconds = time.perf_counter() - start  # the client has shut the kernel down and reaped it
    return {"chapter": path.stem, "mode": mode, "seconds": round(seconds, 1),
            "kernel_cpu_seconds": round(_children_cpu() - cpu_start, 1),
            "load_start": round(load_start, 1), "load_end": round(os.getloadavg()[0], 1),
            "ok": ok, "error": error}


def guide_table(path: Path = GUIDE_TIMES) -> str:
    """The time section of ``book/instructors.md`` made from the committed records at ``path``:
    one line on where and when they were measured, and a row per chapter."""
    recs = json.loads(Path(path).read_text())
    r0 = recs[0]
    lines = [f"Measured on {r0['finished_at'][:10]} with the chapters of commit `{r0['git_commit'][:7]}`, "
             f"torch {r0['torch_version']}, on {r0['cpu_count']} CPU cores ({r0['cpu']}), "
             f"{r0['mode']} mode:", "",
             "| chapter | wall time | kernel CPU time | load average (start, end) |",
             "|---|---|---|---|"]
    for r in recs:
        label = "ch-" + r["chapter"][3:].replace("_", "-")
        status = "" if r["ok"] else " (failed)"
        lines.append(f"| {{numref}}`{{number}}. {{name}} <{label}>` | {r['seconds']:.0f} s{status} "
                     f"| {r['kernel_cpu_seconds']:.0f} s | {r['load_start']}, {r['load_end']} |")
    wall, cpu = sum(r["seconds"] for r in recs), sum(r["kernel_cpu_seconds"] for r in recs)
    lines.append(f"| all {len(recs)} chapters | {wall / 60:.1f} min | {cpu / 60:.1f} min | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("full", "quick"), default="full")
    ap.add_argument("--book", type=Path, default=ROOT / "book", help="folder of NN_*.ipynb chapters")
    ap.add_argument("--only", nargs="*", default=None, help="chapter names or numbers (default: all)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--out", type=Path, default=None, help="where to write the JSON (default: print only)")
    ap.add_argument("--guide-table", nargs="?", const=GUIDE_TIMES, type=Path, default=None,
                    metavar="JSON", help="print the instructor's guide's time table from committed "
                    "records (default: the committed quick-mode CPU times) and exit")
    args = ap.parse_args(argv)
    if args.guide_table:
        print(guide_table(args.guide_table))
        return 0

    from hopfield_lab.results import provenance
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
        rec.update(provenance(), device=device, cpu_count=os.cpu_count())  # provenance has the versions
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
