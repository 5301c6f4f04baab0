"""``python -m hopfield_lab train | sweep | bench`` (see :mod:`hopfield_lab.cli`)."""
from .training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
