"""hopfield_lab: Hopfield networks, hierarchical associative memory and the parallelized MLP-Mixer.

The top level re-exports the most used entry points lazily, so ``import hopfield_lab`` stays
fast; each lives in a small module named for what it holds:

==========================  ===================================================
module                      contents
==========================  ===================================================
``runtime``                 quick/full switch, device, seeds, chapter set-up
``lagrangians``             Lagrangians and their activations
``ham``                     hierarchical associative memory: layers, synapses (tied or
                            untied), energy, the one integrator and energy-increase counter
``classical``               binary Hopfield network, dense associative memory, modern Hopfield
``mixer``                   the model families (one registry), ``create_model``
``official``                loading the official code's state_dicts
``symmetry``                symmetry metrics of trained two-layer MLPs
``perf``                    every speed switch: compile (with fallback), fused AdamW, autocast, CPU allocator
``data``                    the data-set registry, ``load_splits``, the GPU-resident loader
``config``                  ``TrainConfig``: one run's settings
``train``, ``checkpoint``   the training loop; atomic checkpoints and resume
``bench``                   training throughput
``results``                 run records (``RunResult``), ``summarize_runs`` (the one grouping of
                            runs by configuration) and the committed results (package data)
``stats``                   means, Student-t intervals, paired and Welch comparisons, verdicts
``distributed``             torchrun / DDP helpers
``recipes``, ``streaming``  the paper's 224-px recipe and the streaming loader
``metaformer``              the Energy MetaFormer
``odes``                    the symmetry-breaking ODEs (a view of the HAM core)
``exercises``               the one-line checks of the chapters' coding exercises
``viz``, ``demos``          plotting helpers and the chapters' interactive demos
==========================  ===================================================
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
