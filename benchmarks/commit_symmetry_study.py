"""Commit the seeded CPU study (``benchmarks/symmetry_study.sh DATA OUT cpu``) as package data:
copy its result JSONs into ``hopfield_lab/results/symmetry_cpu/`` and write the folder's README
(hardware, data, settings, command, wall time, date, commit, and the per-configuration summary),
all read from the files themselves and this machine.

    python benchmarks/commit_symmetry_study.py OUT [--log OUT/../study.log] [--note TEXT]

Safe to rerun while the study is still going (it copies what has finished and says, in the
README, which runs of the 41-run plan are missing); rerun it once the study's log says
"finished" and rebuild chapter 8.
"""
from __future__ import annotations

import argparse
import os
import datetime as dt
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hopfield_lab.demos import symmetry_study as ss  # noqa: E402
from hopfield_lab.results import HOME, format_summary, load_result, summarize_runs  # noqa: E402

COMMAND = "bash benchmarks/symmetry_study.sh /work/shared/data/cifar10-jpeg.tar.gz /tmp/study/runs cpu"


def cpu_name() -> str:
    """``lscpu``'s model name (or platform.processor())."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown CPU"


def wall_time(log: Path | None, results) -> str:
    """The study's wall time: the log's "finished in N s" line, else the span of the finished runs."""
    if log and log.is_file():
        m = re.search(r"finished in (\d+) s", log.read_text())
        if m:
            s = int(m.group(1))
            return f"{s} s ({s / 3600:.2f} h), from {log.name}"
    ends = [dt.datetime.fromisoformat(r.finished_at.replace("Z", "+00:00")) for r in results]
    starts = [e - dt.timedelta(seconds=r.wall_time_s) for e, r in zip(ends, results)]
    span = (max(ends) - min(starts)).total_seconds()
    return (f"not finished: {span / 3600:.2f} h from the first run's start to the last finished run's end "
            f"({min(starts):%H:%M}–{max(ends):%H:%M} UTC), read from the files")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the study's OUT folder (its result JSONs)")
    ap.add_argument("--dest", default=str(Path(HOME) / ss.SEEDED_FOLDER), help="where to commit them")
    ap.add_argument("--log", default=None, help="the study's log with the 'finished in N s' line "
                    "(default: OUT/../study.log)")
    ap.add_argument("--note", default="a 2-core virtual machine shared with other work while the study ran "
                    "(other processes competed for the cores), so the wall times are inflated",
                    help="what else ran on the machine")
    a = ap.parse_args(argv)
    src, dest = Path(a.out), Path(a.dest)
    log = Path(a.log) if a.log else src.parent / "study.log"
    plan = ss.study_plan()
    files = [src / f"{name}.json" for name in plan if (src / f"{name}.json").is_file()]
    if not files:
        print(f"error: no result of the plan in {src}; run benchmarks/symmetry_study.sh first", file=sys.stderr)
        return 2
    results = [load_result(p) for p in files]
    results = [r for r, p in zip(results, files) if r.finished]
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.json"):
        old.unlink()
    for p, r in zip(files, results):
        shutil.copyfile(p, dest / p.name)
    missing = [n for n in plan if not (dest / f"{n}.json").is_file()]
    r0 = results[0]
    c = r0.config
    commits = sorted({(r.git_commit or "?")[:7] for r in results})
    days = sorted({(r.finished_at or "?")[:10] for r in results})
    status = ("complete: all 41 runs of the plan" if not missing else
              f"**partial: {len(plan) - len(missing)} of {len(plan)} runs** (the study was still running when "
              f"these were copied; missing: {', '.join(missing)})")
    text = f"""# The seeded CPU study of spontaneous symmetry breaking (book chapter 8)

One JSON per run, written by `python -m hopfield_lab sweep` through `benchmarks/symmetry_study.sh`
and copied here by `benchmarks/commit_symmetry_study.py` (which also wrote this README from the
files). Each file holds the full configuration, the per-epoch metrics, the device, versions and
commit, and cos∠(W2, W1ᵀ) with the other symmetry metrics per block and branch after every epoch.

| what | value |
|---|---|
| status | {status} |
| command | `{COMMAND}` |
| hardware | {cpu_name()} (`lscpu` model name), {c.get('device', 'cpu')}, {os.cpu_count()} cores; {a.note}; two sweep processes of one thread each (`OMP_NUM_THREADS=1`); torch {r0.torch_version}, float32, eager |
| data | CIFAR-10 (the JPEG re-encoded copy `{Path(r0.dataset).name}`): {r0.n_train:,} training and {r0.n_test:,} test images, a fixed random subset (seed 0) that every run shares (`--train-subset`/`--test-subset`, `hopfield_lab.data.subset_indices`), {r0.img_size} × {r0.img_size} px |
| models | `*_cifar_cpu`: patch 4 (64 tokens), C = 128, depth 4, MLP ratios (0.5, 4); `{r0.model}` has {r0.params:,} parameters (each file has its own count) |
| training | {r0.epochs} epochs, batch {c['batch_size']}, AdamW lr {c['lr']:g} {c['schedule']}, weight decay {c['weight_decay']}, label smoothing {c['label_smoothing']}, {c['pad_mode']}-pad-{c['crop_padding']} random crop{' and horizontal flip' if c['flip'] else ''} |
| plan | vanilla, ParaMixer, SymMixer, AsymMixer λ = 0 with seeds 0–4; AsymMixer λ = 1e-4 and 1e-2 with seeds 0–2; vanilla, ParaMixer and AsymMixer λ = 0 started from tied weights (`init="tied"`: W2 = W1ᵀ, V = 0) with seeds 0–2; ParaMixer and SymMixer with n_iter 2, seeds 0–2 |
| wall time | {wall_time(log if log.is_file() else None, results)}; the runs took {min(r.wall_time_s for r in results):.0f}–{max(r.wall_time_s for r in results):.0f} s each (their `wall_time_s`; the spread is mostly the machine's other load) |
| run on | {', '.join(days)} (UTC; `finished_at` of the files) |
| code | commit {', '.join(commits)} (`git_commit` of the files) |

The same plan at the full `*_cifar_small` size, all of CIFAR-10 and 30 epochs is part of the GPU
suite (`benchmarks/gpu_suite.py`; also `bash benchmarks/symmetry_study.sh DATA OUT gpu`).
Chapter 8 reads this folder with `hopfield_lab.demos.symmetry_study.load_study()`; it is not one
of the `cifar10*/` GPU studies (other models, data and length), so the two stay apart.

Test accuracy per configuration (mean over seeds, sample standard deviation, 95 % Student-t
interval of the mean; `hopfield_lab.results.summarize_runs`):

```
{format_summary(summarize_runs(results))}
```
"""
    (dest / "README.md").write_text(text)
    print(f"copied {len(results)} runs to {dest}" + (f"; {len(missing)} of the plan missing" if missing else "; complete"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
