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


@pytest.fixture(scope="session")
def rendered_book(tmp_path_factory):
    """The book built once per test session and shared by every test that reads the rendered
    pages (tests/test_book_lint.py, tests/test_browser.py): every chapter executed in quick mode with
    tools/figure_audit.py in its kernels, the slide decks, and the offline assets of tools/offline.py
    (so the browser test needs no network). Returns the HTML folder."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import lint_book
    return lint_book.render(tmp_path_factory.mktemp("book"), execute=True, offline=True)
