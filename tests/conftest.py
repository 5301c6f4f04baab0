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


@pytest.fixture(autouse=True)
def figures_fit_the_column(request, monkeypatch):
    """Every figure that a library plotting function draws in the demos and viz tests must read
    well in the book's column (``viz.figure_problems``: at most 7.5 in wide, no text under 8 pt,
    no raw TeX-style ``_``/``^`` outside mathtext), players included (checked before they are
    rendered and closed). Other test modules are left alone."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    if not (name.startswith("test_demos_") or name == "test_viz"):
        yield
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hopfield_lab import viz

    problems = []
    real_player = viz.player

    def checking_player(anim, alt, **kw):
        problems.extend(f"player: {p}" for p in viz.figure_problems(anim._fig))
        return real_player(anim, alt, **kw)

    monkeypatch.setattr(viz, "player", checking_player)
    before = set(plt.get_fignums())
    yield
    for num in sorted(set(plt.get_fignums()) - before):
        problems.extend(f"figure {num}: {p}" for p in viz.figure_problems(plt.figure(num)))
        plt.close(num)
    assert not problems, "figures that do not fit the book's column:\n" + "\n".join(problems)


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
