"""The book wing: what the chapters call (their demos, plots and exercise checks). It may use the
science and training wings; nothing there uses it (``tests/test_layering.py``)."""
