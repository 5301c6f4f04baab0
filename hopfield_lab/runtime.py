"""Run-time switches shared by the library, the book and the tests.

Everything that decides *how big* or *where* a computation runs lives here, in one visible place:

* :func:`quick` -- the book's quick/full switch (environment variable ``HOPFIELD_LAB_QUICK``).
* :func:`get_device` -- CUDA when present, else CPU (``HOPFIELD_LAB_DEVICE`` overrides).
* :func:`seed_everything` -- seeds Python, NumPy and torch (all devices).
* :func:`setup` -- what the first cell of every chapter calls: seeds, picks the device and
  shows the device and the mode (an admonition in a notebook, a line in a terminal).
* :func:`static_build` -- True while the book's pages are being built (``HOPFIELD_LAB_STATIC``,
  set by ``tools/build_book.sh``): live widgets are then replaced by a pointer to their static twin.
* :func:`progress_bar` -- a tqdm bar that stays off on the static pages and under ``TQDM_DISABLE``.
* :func:`provenance` -- where and with what a result was computed (device and CPU names, threads,
  versions, commit, time): the one function every result record, committed file and benchmark
  takes them from (:func:`device_name`, :func:`cpu_name`, :func:`versions`, :func:`git_commit`).

This module is the shared base: it imports nothing else of the package but ``_version``, so the
science, training and book modules may all use it.
"""
from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on", "quick"}
_FALSE = {"0", "false", "no", "off", "full"}

QUICK_ENV = "HOPFIELD_LAB_QUICK"
DEVICE_ENV = "HOPFIELD_LAB_DEVICE"
STATIC_ENV = "HOPFIELD_LAB_STATIC"


def quick() -> bool:
    """Return True in quick mode, False in full mode.

    Quick mode sizes every chapter so that the whole book executes in minutes on two CPU
    cores; full mode runs the paper-sized experiments (meant for a GPU, e.g. Colab).

    Resolution order:

    1. ``HOPFIELD_LAB_QUICK`` if set (``1/true/yes/on/quick`` or ``0/false/no/off/full``);
    2. quick when the ``CI`` environment variable is set;
    3. otherwise quick exactly when no CUDA device is available.
    """
    value = os.environ.get(QUICK_ENV)
    if value is not None and value.strip() != "":
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise ValueError(
            f"{QUICK_ENV}={value!r} is not understood: use 1 (quick mode) or 0 (full mode)."
        )
    if os.environ.get("CI"):
        return True
    return not torch.cuda.is_available()


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick a torch device: the argument, else ``HOPFIELD_LAB_DEVICE``, else CUDA if present, else CPU."""
    if device is None:
        device = os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"Device {dev} was requested but no CUDA GPU is visible to torch. "
            "Use device='cpu' (or unset HOPFIELD_LAB_DEVICE), or on Colab choose "
            "Runtime > Change runtime type > GPU."
        )
    return dev


def device_name(device: str | torch.device | None = None) -> str:
    """A human-readable name of the device (default: :func:`get_device`'s): the GPU's name, or ``"cpu"``."""
    dev = get_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The project's git commit (``$HOPFIELD_LAB_GIT_COMMIT`` overrides), or None."""
    env = os.environ.get("HOPFIELD_LAB_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def versions() -> dict:
    """Versions and commit of the code that runs: ``torch_version, python_version,
    hopfield_lab_version, git_commit`` (part of :func:`provenance`)."""
    from ._version import __version__

    return {"torch_version": torch.__version__, "python_version": platform.python_version(),
            "hopfield_lab_version": __version__, "git_commit": git_commit()}


def provenance(device: str | torch.device | None = None) -> dict[str, Any]:
    """Where and with what a result was computed: ``device`` (the GPU's name, or ``"cpu"``; default
    the CPU), ``cpu`` (model name), ``cpu_threads`` (torch's intra-op threads), :func:`versions`
    and ``finished_at`` (UTC, ``2026-01-02T03:04:05Z``). The fields of the same names of
    :class:`hopfield_lab.results.RunResult` and of every committed result file come from here."""
    return {"device": device_name(device if device is not None else "cpu"), "cpu": cpu_name(),
            "cpu_threads": torch.get_num_threads(), **versions(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def static_build() -> bool:
    """True while the book's static pages are built (``HOPFIELD_LAB_STATIC=1``, set by
    ``tools/build_book.sh``): nobody can move a slider there, so chapters show a note instead."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in _TRUE


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` progress bar, off when ``enabled`` is false, while the static pages are
    built (:func:`static_build`) or under ``TQDM_DISABLE=1``.

    tqdm reads ``TQDM_DISABLE`` only as the default of ``disable``: a caller that passes
    ``disable=not progress`` overrides it and leaves a stale widget on the built page. Every bar
    of the library is made here so that the switches above always win. ``kwargs`` go to tqdm.
    """
    from tqdm.auto import tqdm

    off = (not enabled or static_build()
           or os.environ.get("TQDM_DISABLE", "").strip().lower() in _TRUE)
    return tqdm(iterable, disable=off, **kwargs)


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (rich display possible), False in a terminal or a script."""
    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip is not None else None
    return shell is not None and hasattr(shell, "kernel")


def mode_summary(dev: torch.device) -> tuple[str, str]:
    """(title, text) of the mode admonition: which mode and device this run uses, and how to switch."""
    from ._version import __version__

    mode = "quick" if quick() else "full"
    where = device_name(dev)
    title = f"Live cells: {mode} mode on {where}"
    if mode == "quick":
        text = (f"The live cells of this page run in <b>quick mode</b> on <b>{where}</b> "
                f"(hopfield_lab {__version__}, torch {torch.__version__}): sizes are cut so "
                "that a chapter executes in minutes on two CPU cores. Where an effect needs size, "
                "the page also shows a <i>committed full-size result</i>. For the full-size runs set "
                f"<code>{QUICK_ENV}=0</code> before this cell (meant for a GPU: on Colab, "
                "<i>Runtime &rsaquo; Change runtime type &rsaquo; GPU</i>).")
    else:
        text = (f"The live cells of this page run in <b>full mode</b> on <b>{where}</b> "
                f"(hopfield_lab {__version__}, torch {torch.__version__}): the full-size "
                "experiments; long runs print their expected time first. For the quick version set "
                f"<code>{QUICK_ENV}=1</code> before this cell.")
    return title, text


def show_mode(dev: torch.device) -> None:
    """Display the mode admonition (HTML in a notebook; one line in a terminal)."""
    title, text = mode_summary(dev)
    if _in_notebook():
        from IPython.display import HTML, display

        display(HTML(
            '<div class="admonition note" style="border-left:4px solid #1565c0;'
            'background:rgba(21,101,192,0.06);padding:0.3em 0.9em;margin:0.4em 0">'
            f'<p class="admonition-title" style="font-weight:bold;margin:0.2em 0">{title}</p>'
            f'<p style="margin:0.2em 0">{text}</p></div>'))
    else:
        import re

        print(f"{title}. " + re.sub(r"<[^>]+>", "", text).replace("&rsaquo;", ">"))


def setup(seed: int = 0, verbose: bool = True) -> torch.device:
    """Seed, pick the device and show the mode; the first cell of every chapter calls this.

    Returns the chosen :class:`torch.device`.
    """
    seed_everything(seed)
    dev = get_device()
    if verbose:
        show_mode(dev)
    return dev
