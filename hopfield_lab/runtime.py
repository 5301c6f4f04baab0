"""Run-time switches shared by the library, the book and the tests.

Everything that decides *how big* or *where* a computation runs lives here, in one visible place:

* :func:`quick` -- the book's quick/full switch (environment variable ``HOPFIELD_LAB_QUICK``).
* :func:`get_device` -- CUDA when present, else CPU (``HOPFIELD_LAB_DEVICE`` overrides).
* :func:`seed_everything` -- seeds Python, NumPy and torch (all devices).
* :func:`setup` -- what the first cell of every chapter calls: seeds, picks the device and
  prints the device and the mode.
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on", "quick"}
_FALSE = {"0", "false", "no", "off", "full"}

QUICK_ENV = "HOPFIELD_LAB_QUICK"
DEVICE_ENV = "HOPFIELD_LAB_DEVICE"


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
    """A human-readable name of the device: the GPU's name, or ``"cpu"``."""
    dev = get_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def setup(seed: int = 0, verbose: bool = True) -> torch.device:
    """Seed, pick the device and report the mode; the first cell of every chapter calls this.

    Returns the chosen :class:`torch.device`.
    """
    seed_everything(seed)
    dev = get_device()
    if verbose:
        mode = "quick" if quick() else "full"
        print(f"hopfield_lab {__import__('hopfield_lab').__version__} | device: {device_name(dev)} | mode: {mode}")
    return dev
