"""The training wing: everything that runs a training job (config, data, loop, checkpoints,
throughput, multi-GPU, the paper's recipe, the command line). It uses the science modules
(``hopfield_lab.mixer``, ``symmetry``) and never the book's (``tests/test_layering.py``)."""
