"""hopfield_lab: Hopfield networks, hierarchical associative memory and the parallelized MLP-Mixer.

The top level re-exports the most used entry points lazily, so ``import hopfield_lab`` stays
fast; each lives in a small module named for what it holds. This table is the one module map
(CONTRIBUTING.md points here; ``tests/test_layering.py`` checks that it lists every module and
that no module imports from a wing it may not). Wings: **science** (the models and their
mathematics: importable alone, with core only), **training** (runs: may use science and core), **book** (the
chapters' side: may use everything), **core** (the shared base: imports nothing of the package).

=================================  ========  ===================================================
module                             wing      contents
=================================  ========  ===================================================
``runtime``, ``_version``          core      quick/full switch, device, seeds, provenance, chapter set-up
``stats``                          core      means, Student-t intervals, paired and Welch comparisons,
                                             verdicts (numpy only: the one home of the book's statistics)
``lagrangians``                    science   Lagrangians and their activations
``ham``                            science   hierarchical associative memory: layers, synapses (tied
                                             or untied), energy, the one integrator and energy-increase
                                             counter
``classical``                      science   binary Hopfield network, dense associative memory, modern
                                             Hopfield
``mixer``                          science   the model families (one registry), ``create_model``, λ's rules
``official``                       science   loading the official code's state_dicts
``symmetry``                       science   symmetry metrics of trained two-layer MLPs
``odes``                           science   the symmetry-breaking ODEs (a view of the HAM core)
``metaformer``                     science   the Energy MetaFormer
``training``                       training  the training wing (sub-package)
``training.perf``                  training  every speed switch: compile (with fallback), fused AdamW,
                                             autocast, CPU allocator
``training.data``                  training  the data-set registry, ``load_splits``, the GPU-resident loader
``training.config``                training  ``TrainConfig``: one run's settings
``training.train``                 training  the training loop
``training.checkpoint``            training  atomic checkpoints and resume
``training.bench``                 training  training throughput
``training.run``                   training  ``RunResult``: the record of one run, its name (``run_name``)
                                             and λ's spelling
``training.distributed``           training  torchrun / DDP helpers
``training.recipes``               training  the paper's 224-px recipe
``training.streaming``             training  the streaming loader of the 224-px recipe
``training.cli``, ``__main__``     training  ``python -m hopfield_lab train | sweep | bench``
``book``                           book      the book wing (sub-package)
``book.exercises``                 book      the one-line checks of the chapters' coding exercises
``book.viz``, ``book.demos``       book      plotting helpers and the chapters' interactive demos
                                             (``book.demos.<chapter>``)
``results``                        book      the committed results (package data, ``results.committed``),
                                             ``summarize_runs`` (``results.summary``: the one grouping of
                                             runs by configuration); re-exports ``training.run``
=================================  ========  ===================================================

The modules of the training and book wings lived at the top level before 0.3; their old paths
(``hopfield_lab.train``, ``hopfield_lab.data``, ``hopfield_lab.demos.<chapter>``,
``hopfield_lab.viz``, ``hopfield_lab.results.run``, ...) still import, as aliases of the same
module objects (:data:`OLD_PATHS`), so existing code and notebooks keep working.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from ._version import __version__
from .runtime import device_name, get_device, quick, seed_everything, setup

_LAZY = {
    "HAM": "ham",
    "load_dataset": "training.data",
    "TrainConfig": "training.train",
    "create_model": "mixer",
    "list_models": "mixer",
    "load_official_state_dict": "official",
    "symmetry_report": "symmetry",
}

__all__ = ["__version__", "quick", "get_device", "device_name", "seed_everything", "setup", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'hopfield_lab' has no attribute {name!r}")


#: old module path (before the wings became sub-packages) -> where the module lives now
OLD_PATHS = {
    **{f"{__name__}.{m}": f"{__name__}.training.{m}" for m in (
        "train", "config", "checkpoint", "data", "streaming", "recipes", "distributed", "perf", "bench", "cli")},
    f"{__name__}.results.run": f"{__name__}.training.run",
    f"{__name__}.demos": f"{__name__}.book.demos",
    f"{__name__}.viz": f"{__name__}.book.viz",
    f"{__name__}.exercises": f"{__name__}.book.exercises",
}


def _new_path(name: str) -> str | None:
    for old, new in OLD_PATHS.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import hopfield_lab.<old path>`` give the module at its new path: the same object
    (so ``monkeypatch.setattr(old_module, ...)`` reaches the real one), no second copy."""

    def find_spec(self, fullname, path=None, target=None):
        new = _new_path(fullname)
        return importlib.util.spec_from_loader(fullname, self) if new else None

    def create_module(self, spec):
        module = importlib.import_module(_new_path(spec.name))
        spec.loader_state = module.__spec__  # the import system overwrites __spec__: restore it below
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # the module keeps its own spec (and parent)


if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _OldPathFinder())  # before any path finder: an old path never loads a second copy
