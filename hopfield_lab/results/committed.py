"""Committed results: where they live (package data), and how they are loaded and written."""
from __future__ import annotations

import json
from pathlib import Path

from ..runtime import provenance

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


def save(name: str, data: dict, *, settings: dict, seconds: float, device=None, root: Path | None = None) -> Path:
    """Write ``{"settings", "seconds", "provenance", "data"}`` as JSON, atomically (the trainer's
    writer: temporary file, fsync, rename), to ``root / name`` (``root``: this package's folder)."""
    from ..training.checkpoint import atomic_write_json

    record = {"settings": settings, "seconds": round(float(seconds), 1),
              "provenance": provenance(device), "data": data}
    return atomic_write_json(record, Path(root or HOME) / name)
