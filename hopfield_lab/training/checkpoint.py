"""Files of a run that must never be half-written: checkpoints, result files, decoded data caches.

* :func:`atomic_save` / :func:`atomic_write_json` -- write a temp file beside the target, flush
  and ``fsync`` it, then ``os.replace`` it into place: a crash mid-write leaves the previous file
  intact (used by the trainer and by :mod:`hopfield_lab.data`'s decoded-image cache).
* :func:`remove_stale_temp_files` -- the temp files of writes killed midway, removed on the next start.
* :func:`load_checkpoint`, :func:`rng_state` / :func:`set_rng_state` -- the trainer's checkpoints
  and the random streams they carry (exact resume).
* :func:`plain` -- tensors and NumPy scalars inside nested containers as JSON-able Python values.
"""
from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_NAME", "atomic_save", "atomic_write_json", "remove_stale_temp_files", "load_checkpoint",
           "rng_state", "set_rng_state", "plain"]

CHECKPOINT_NAME = "checkpoint.pt"
"""The checkpoint's file name in a run's ``out_dir``."""


def plain(x):
    """Convert tensors / numpy scalars inside nested containers to JSON-able Python values."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same folder, flush to disk, then ``os.replace``.

    A crash or an exception mid-write leaves the previous file at ``path`` intact (the temp file
    is removed on errors).
    """
    return _atomic_write(path, "wb", lambda fh: torch.save(obj, fh))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON via a temp file + ``os.replace`` (never a half-written result file)."""
    def write(fh):
        json.dump(plain(obj), fh, indent=1)
        fh.write("\n")

    return _atomic_write(path, "w", write)


def _atomic_write(path: str | os.PathLike, mode: str, write) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``, fsync, then ``os.replace`` it into place.

    A crash or an exception midway leaves the previous file at ``path`` intact (the temp file
    is removed on errors).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the temp files ``.<name>.tmp<PID>`` that :func:`_atomic_write` left beside ``path``
    when a process was killed mid-write (PIDs of live processes are kept); returns those removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.tmp*"):
        pid = tmp.name[len(f".{path.name}.tmp"):]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def rng_state() -> dict:
    """Python's, NumPy's and torch's (CPU and CUDA) generator states, for a checkpoint."""
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    """Restore the generator states of :func:`rng_state` (CUDA only on the same number of GPUs)."""
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`hopfield_lab.train.train` (a trusted file of this project)."""
    return torch.load(path, map_location=map_location, weights_only=False)
