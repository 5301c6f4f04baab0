"""Committed results: the full-size runs that a chapter shows beside its live quick run.

The files ship inside the package (package data), so a chapter finds them wherever the library
is installed: a checkout, ``pip install``, Colab, offline. Each sub-folder holds the JSON files of
one study and a README with the hardware, data, settings and command that produced them:

=================  ==========================================================  =================
folder             what                                                        written by
=================  ==========================================================  =================
``full_size/``     chapters' full-size runs (capacity curves, the Energy       ``benchmarks/full_size.py``
                   MetaFormer on MNIST, the large ODE system, ...)
``cifar10/``       the CIFAR-10 training study of chapter 8 (12 epochs; a      ``benchmarks/cifar10_study.sh``
                   longer or multi-seed study goes in a sibling ``cifar10_*/``)
``symmetry_cpu/``  the seeded CPU study of spontaneous symmetry breaking        ``benchmarks/symmetry_study.sh``,
                   (chapter 8: error bars, tied start, n_iter; 41 runs)         ``commit_symmetry_study.py``
``cifar10_``       30-epoch reference accuracies measured with the official    by hand, from the
``reference/``     model code (one home for those numbers; see its README)     runs it describes
``throughput/``    training img/s, ours against the official code              ``benchmarks/bench_mixer.py``
=================  ==========================================================  =================

Three modules, one home each:

* :mod:`.committed` (the book's side) -- :func:`path` (a file or folder of this package),
  :func:`load` (one JSON, with a one-line error that says how to produce it when it is missing),
  :func:`save` (write one atomically, with its provenance);
* :mod:`.summary` -- :func:`summarize_runs`, the one grouping of runs by configuration (family,
  λ, n_iter, init) with n, mean and t interval per group (:mod:`hopfield_lab.stats`), used by the
  book and the GPU suite alike; :func:`compare_groups` (paired over shared seeds, or Welch);
* :mod:`hopfield_lab.training.run` (the trainer's side) -- :class:`RunResult`, the typed, versioned record of one
  training run (:func:`load_result`, :func:`upgrade`), and the one spelling of run names and λ
  (:func:`run_name`, :func:`format_lam`).

:func:`provenance` (hardware, software and time of a result), :func:`versions` and
:func:`git_commit` are re-exported from their one home, :mod:`hopfield_lab.runtime`. The names of
:mod:`.committed` load on first use, so the trainer, which reads :mod:`.run`, never loads the book's side.
"""
from ..runtime import git_commit, provenance, versions
from ..training.run import RESULT_NAME, SCHEMA_VERSION, RunResult, format_lam, load_result, run_name, upgrade
from .summary import DEFAULT_BY, compare_groups, find_group, format_summary, group_name, summarize_runs

_COMMITTED = ("HOME", "MissingResultError", "path", "load", "save")


def __getattr__(name: str):
    if name in _COMMITTED:
        from . import committed

        return getattr(committed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HOME", "MissingResultError", "path", "load", "save", "provenance", "RESULT_NAME", "SCHEMA_VERSION",
           "RunResult", "load_result", "upgrade", "format_lam", "run_name", "git_commit", "versions",
           "DEFAULT_BY", "summarize_runs", "find_group", "compare_groups", "group_name", "format_summary"]
