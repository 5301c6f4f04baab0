"""Committed results: the full-size runs that a chapter shows beside its live quick run.

The files ship inside the package (package data), so a chapter finds them wherever the library
is installed: a checkout, ``pip install``, Colab, offline. Each sub-folder holds the JSON files of
one study and a README with the hardware, data, settings and command that produced them:

=================  ==========================================================  =================
folder             what                                                        written by
=================  ==========================================================  =================
``full_size/``     chapters' full-size runs (capacity curves, the Energy       ``benchmarks/full_size.py``
                   MetaFormer on MNIST, the large ODE system, ...)
``cifar10/``       the CIFAR-10 training study of chapter 8                    ``benchmarks/cifar10_study.sh``
=================  ==========================================================  =================

API: :func:`path` (a file or folder of this package), :func:`load` (one JSON, with a one-line
error that says how to produce it when it is missing), :func:`save` (write one atomically, with
its provenance), :func:`provenance` (hardware, software and time of a run).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

HOME = Path(__file__).resolve().parent

__all__ = ["HOME", "MissingResultError", "path", "load", "save", "provenance"]


class MissingResultError(FileNotFoundError):
    """A committed result file is not there (say which, and how to produce it)."""


def path(*parts: str) -> Path:
    """``HOME / parts``: a committed result file or folder (it need not exist)."""
    return HOME.joinpath(*parts)


def load(name: str) -> dict:
    """The JSON result ``name`` (e.g. ``"full_size/ch01_capacity.json"``)."""
    p = path(name)
    if not p.exists():
        raise MissingResultError(
            f"no committed result {name!r} in {HOME}: produce it with `python benchmarks/full_size.py` "
            "(see the README of that folder), or reinstall hopfield-lab if the package data is missing")
    with open(p) as fh:
        return json.load(fh)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    env = os.environ.get("HOPFIELD_LAB_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HOME, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: torch.device | str | None = None) -> dict[str, Any]:
    """Where and with what a result was computed: device name, CPU, threads, versions, commit, time."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "cpu": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "hopfield_lab_version": __import__("hopfield_lab").__version__,
        "git_commit": _git_commit(),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save(name: str, data: dict, *, settings: dict, seconds: float, device=None, root: Path | None = None) -> Path:
    """Write ``{"settings", "seconds", "provenance", "data"}`` as JSON, atomically (temporary file,
    fsync, rename), to ``root / name`` (``root`` defaults to this package's folder)."""
    target = Path(root or HOME) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    record = {"settings": settings, "seconds": round(float(seconds), 1),
              "provenance": provenance(device), "data": data}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
