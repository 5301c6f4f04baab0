"""What a training run leaves behind: its result record, and how runs and their λ are named.

* :func:`format_lam` -- the shortest scientific notation that reads back as exactly λ
  (``1e-02``, ``1.2e-02``); the one spelling of λ in file names and labels.
* :func:`run_name` -- the file stem of a sweep run, unique per (model, n_iter, λ, seed).
"""
from __future__ import annotations

__all__ = ["format_lam", "run_name"]


def format_lam(lam: float) -> str:
    """λ in the shortest ``%e`` form that ``float()`` reads back exactly: ``0 -> "0"``,
    ``0.01 -> "1e-02"``, ``0.012 -> "1.2e-02"``, ``5e-4 -> "5e-04"``."""
    lam = float(lam)
    if lam == 0:
        return "0"
    for digits in range(17):
        text = f"{lam:.{digits}e}"
        if float(text) == lam:
            return text
    return repr(lam)  # inf / nan


def run_name(model: str, lam: float | None, seed: int, n_iter: int | None = None) -> str:
    """File stem of a sweep run, e.g. ``asymmixer_cifar_small_lam1.2e-2_seed0``.

    λ is written by :func:`format_lam` with the exponent's leading zeros dropped (``1e-2``, the
    spelling of the committed results/cifar10 files), so distinct λ give distinct names and
    ``float(<text after "lam">)`` is λ again.
    """
    parts = [model]
    if n_iter is not None:
        parts.append(f"ni{n_iter}")
    if lam is not None:
        text = format_lam(lam)
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        parts.append(f"lam{text}")
    parts.append(f"seed{seed}")
    return "_".join(parts)
