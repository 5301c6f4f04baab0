"""hopfield_lab: Hopfield networks, hierarchical associative memory and the parallelized MLP-Mixer.

The top level re-exports the most used entry points lazily, so ``import hopfield_lab`` stays
fast; each lives in a small module named for what it holds. This table is the one module map
(CONTRIBUTING.md points here; ``tests/test_layering.py`` checks that it lists every module and
that no module imports from a wing it may not). Wings: **science** (the models and their
mathematics: importable alone), **training** (runs: may use science and core), **book** (the
chapters' side: may use everything), **core** (shared switches: imports nothing of the package).

==========================  ========  ==========================================================
module                      wing      contents
==========================  ========  ==========================================================
``runtime``, ``_version``   core      quick/full switch, device, seeds, provenance, chapter set-up
``lagrangians``             science   Lagrangians and their activations
``ham``                     science   hierarchical associative memory: layers, synapses (tied or
                                      untied), energy, the one integrator and energy-increase counter
``classical``               science   binary Hopfield network, dense associative memory, modern Hopfield
``mixer``                   science   the model families (one registry), ``create_model``, λ's rules
``official``                science   loading the official code's state_dicts
``symmetry``                science   symmetry metrics of trained two-layer MLPs
``odes``                    science   the symmetry-breaking ODEs (a view of the HAM core)
``metaformer``              science   the Energy MetaFormer
``perf``                    training  every speed switch: compile (with fallback), fused AdamW, autocast, CPU allocator
``data``                    training  the data-set registry, ``load_splits``, the GPU-resident loader
``config``                  training  ``TrainConfig``: one run's settings
``train``, ``checkpoint``   training  the training loop; atomic checkpoints and resume
``bench``                   training  training throughput
``results.run``             training  ``RunResult``: the record of one run, its name (``run_name``) and λ's spelling
``distributed``             training  torchrun / DDP helpers
``recipes``, ``streaming``  training  the paper's 224-px recipe and the streaming loader
``cli``, ``__main__``       training  ``python -m hopfield_lab train | sweep | bench``
``results``                 book      the committed results (package data, ``results.committed``); re-exports ``results.run``
``exercises``               book      the one-line checks of the chapters' coding exercises
``viz``, ``demos``          book      plotting helpers and the chapters' interactive demos (``demos.<chapter>``)
==========================  ========  ==========================================================
"""
from __future__ import annotations

import importlib

from ._version import __version__
from .runtime import device_name, get_device, quick, seed_everything, setup

_LAZY = {
    "HAM": "ham",
    "load_dataset": "data",
    "TrainConfig": "train",
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
