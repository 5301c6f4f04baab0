"""Shared fixtures of the test suite."""
import pytest


@pytest.fixture
def verdict(capsys):
    """Run a chapter's check cell, ``check(fn)``, and return the line it printed, after checking
    the protocol of :func:`hopfield_lab.exercises.check`: it returns None (the cell shows the
    printed line only) and prints exactly one line, never a traceback."""
    def run(check, fn) -> str:
        assert check(fn) is None, "a check returns None: the cell shows its printed line only"
        out = capsys.readouterr().out.strip()
        assert out and "\n" not in out and "Traceback" not in out, out
        return out
    return run
