"""Files of a run that must never be half-written: checkpoints, result files, decoded data caches.

* :func:`atomic_save` / :func:`atomic_write_json` -- write a temp file beside the target, flush
  and ``fsync`` it, then ``os.replace`` it into place: a crash mid-write leaves the previous file
  intact (used by the trainer and by :mod:`hopfield_lab.data`'s decoded-image cache).
* :func:`remove_stale_temp_files` -- the temp files of writes killed midway, removed on the next start.
* :func:`load_checkpoint`, :func:`rng_state` / :func:`set_rng_state` -- the trainer's checkpoints
  and the random streams they carry (exact resume); a damaged file is a one-line
  :class:`CheckpointError`, a full disk a one-line ``OSError`` naming the file.
* :class:`RunLock` -- a live run owns its folder (a lock that a crashed run does not leave stuck).
* :func:`plain` -- tensors and NumPy scalars inside nested containers as JSON-able Python values.
"""
from __future__ import annotations

import errno
import json
import math
import os
import random
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "RunLock", "FolderInUse", "LOCK_NAME", "atomic_save",
           "atomic_write_json", "remove_stale_temp_files", "load_checkpoint", "rng_state", "set_rng_state", "plain"]

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
    except (OSError, RuntimeError) as exc:
        raise _write_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_error(path: Path, exc: Exception) -> Exception:
    """The one-line error of a failed write of ``path``: a full disk (``ENOSPC``, or torch's
    ``enforce fail at inline_container.cc`` when the zip writer hits it), a quota, a read-only
    file system, or the original error when it is none of those."""
    text = " ".join(str(exc).split())
    full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or (
        isinstance(exc, RuntimeError) and ("inline_container" in text or "file write failed" in text))
    if full:
        return _os_error(errno.ENOSPC, f"could not write {path}: the disk is full (or over quota; {text[:120]}). "
                                       f"The previous file there is intact: free space on {path.parent} or choose "
                                       "another folder (--out-dir), then rerun to resume.")
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return _os_error(exc.errno, f"could not write {path} ({exc.strerror}): choose a writable folder (--out-dir).")
    return exc


def _os_error(code: int, message: str) -> OSError:
    """An OSError whose ``str()`` is ``message`` alone (no ``[Errno n]`` prefix) and whose ``errno`` is ``code``."""
    exc = OSError(message)
    exc.errno = code
    return exc


# ---------------------------------------------------------------------------------------------
# a run owns its folder
# ---------------------------------------------------------------------------------------------
LOCK_NAME = ".lock"
"""The lock file's name in a run's ``out_dir`` (:class:`RunLock`)."""


class FolderInUse(RuntimeError):
    """Another live process holds the :class:`RunLock` of a run's folder. ``owner`` is what the
    lock file records (``pid``, ``host``, ``started``), or ``{}``."""

    def __init__(self, message: str, owner: dict):
        super().__init__(message)
        self.owner = owner


_HELD: dict[str, "RunLock"] = {}  # lock paths this process holds (a sweep's lock, then its run's)


class RunLock:
    """An exclusive lock on a run's folder (``<folder>/.lock``), held while the run writes there.

    The lock is an ``flock`` on the file, which the kernel drops when the holder ends in any
    way (exception, ``SIGKILL``, a crash): a dead run never leaves it stuck. The file records
    ``{"pid", "host", "started"}`` for the message another run gets (:class:`FolderInUse`) and
    is removed on release. Taking a lock this process already holds is a no-op (a sweep locks a
    run's folder, then the run's :func:`~hopfield_lab.train.train` takes it again).
    Use as ``with RunLock(folder) as lock: ...`` or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, folder: str | os.PathLike, name: str = LOCK_NAME):
        self.path = Path(folder) / name
        self._fd: int | None = None

    def acquire(self, what: str = "out_dir (--out-dir)") -> "RunLock":
        key = str(self.path.resolve())
        if key in _HELD:
            return self  # held by this process already: nested, released by the outer holder
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if not isinstance(exc, BlockingIOError):  # a file system without locks (some FUSE mounts)
                    warnings.warn(f"cannot lock {self.path} ({exc.strerror}): two runs in {self.path.parent} "
                                  "would not notice each other", stacklevel=2)
                    return self
                owner = self.owner()
                who = (f"PID {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"
                       if owner else "another process")
                raise FolderInUse(f"{self.path.parent} is in use by a live run ({who}): wait for it to end, "
                                  f"or choose another {what}.", owner) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:  # released and removed between our open and our flock
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
            self._fd = fd
            _HELD[key] = self
            return self
        raise FolderInUse(f"could not take the lock {self.path} (it kept changing hands): rerun.", {})

    def owner(self) -> dict:
        """What the lock file records (``pid``, ``host``, ``started``), or ``{}``."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD.pop(str(self.path.resolve()), None)
        try:
            self.path.unlink()  # while still holding it: whoever opens it next makes a new file
        except OSError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


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


class CheckpointError(ValueError):
    """A checkpoint file cannot be used (truncated, empty, not a checkpoint, keys missing); the
    message names the file, the cause and what to do."""


#: what every checkpoint of :func:`hopfield_lab.train.train` holds
CHECKPOINT_KEYS = ("epoch", "model", "optimizer", "scheduler", "rng", "history", "config",
                   "train_time_s", "wall_time_s")


def load_checkpoint(path: str | os.PathLike, map_location="cpu", *, required=CHECKPOINT_KEYS) -> dict:
    """Load a checkpoint written by :func:`hopfield_lab.train.train` (a trusted file of this project).

    Raises :class:`CheckpointError` (one line: the file, the cause, the remedy) when the file is
    empty, truncated, not a checkpoint, or lacks one of the ``required`` keys.
    """
    path = Path(path)
    remedy = ("delete it, or start afresh with resume=False (--no-resume); the run then begins again "
              "at epoch 1")
    try:
        size = path.stat().st_size
        if size == 0:
            raise CheckpointError(f"checkpoint {path} is empty (0 bytes; a write was cut off): {remedy}.")
        obj = torch.load(path, map_location=map_location, weights_only=False)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except Exception as exc:  # RuntimeError (zip reader), EOFError, UnpicklingError, ...
        cause = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(exc).__name__}: "
                              f"{cause}): {remedy}.") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a training checkpoint: {remedy}.")
    missing = [k for k in required if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)} (not a checkpoint of "
                              f"hopfield_lab.train, or damaged): {remedy}.")
    return obj
