"""Structure of the book: the table of contents, the chapters' set-up cells, exercises,
nbval checks and citations. (nbval itself executes the notebooks.)"""
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nb as nbtool  # noqa: E402

TOC = (ROOT / "_toc.yml").read_text()
TOC_FILES = re.findall(r"(?:root|file):\s*(\S+)", TOC)
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
BIB_KEYS = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))


def _resolve(entry):
    for suffix in (".md", ".ipynb"):
        p = ROOT / f"{entry}{suffix}"
        if p.exists():
            return p
    return None


@pytest.mark.parametrize("entry", TOC_FILES)
def test_toc_entries_exist(entry):
    assert _resolve(entry) is not None, f"_toc.yml lists {entry}, but no {entry}.md/.ipynb exists"


def test_every_chapter_is_in_the_toc():
    for path in CHAPTERS:
        assert f"book/{path.stem}" in TOC_FILES, f"{path.name} is not listed in _toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_structure(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and code[0].source == nbtool.setup_cell_source(), (
        f"{path.name}: the first code cell must be the standard set-up cell (tools/nb.py refresh)")
    assert "hide-input" in code[0].metadata.get("tags", [])
    badges = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert nbtool.colab_badge_source(path) in badges, f"{path.name}: no Colab badge (tools/nb.py strip)"
    label = "ch-" + path.stem[3:].replace("_", "-")
    assert nb.cells[0].source.startswith(f"({label})=\n# "), (
        f"{path.name}: the title cell must start with the label ({label})= so that "
        f"{{numref}}`chapter %s <{label}>` gives its number")
    assert not re.match(r"\(ch-[\w-]+\)=\n# \d", nb.cells[0].source), "no hand-written chapter number"
    text = "\n".join(c.source for c in nb.cells)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.search(r"(?m)^#{1,3} \d+\.\d*", prose), (
        f"{path.name}: a hand-numbered heading; the numbered table of contents numbers them")
    assert re.search(r"learning goals", text, re.I), f"{path.name}: no learning goals"
    assert "{exercise}" in text and "{solution}" in text, f"{path.name}: no exercise with solution"
    checks = [c for c in code if nbtool.is_checked(c)]
    assert checks, f"{path.name}: no cell tagged '{nbtool.CHECK_TAG}', so nbval checks no result"
    assert all(c.outputs for c in checks), f"{path.name}: a checked cell has no stored output"
    assert not any("NBVAL_" in c.source for c in code), (
        f"{path.name}: use the cell tag {nbtool.CHECK_TAG!r}, not a comment that readers see")
    assert "widgets" not in nb.metadata, f"{path.name}: stored widget state (tools/nb.py strip)"
    stored = [c for c in code if c.outputs and not nbtool.is_checked(c)]
    assert not stored, f"{path.name}: outputs stored outside checked cells (tools/nb.py refresh)"
    assert "ipywidgets" in text or "make_widget" in text, f"{path.name}: no interactive demo"


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.*")), ids=lambda p: p.name)
def test_citations_resolve(path):
    if path.suffix not in {".md", ".ipynb"}:
        pytest.skip("not a page")
    text = path.read_text()
    for group in re.findall(r"\{cite[a-z:]*\}`([^`]+)`", text):
        for key in group.split(","):
            assert key.strip() in BIB_KEYS, f"{path.name} cites {key.strip()!r}, not in references.bib"


def test_repository_url_in_one_place():
    url = nbtool.repository_url()
    assert url.startswith("https://github.com/")
    assert url in nbtool.setup_cell_source()


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "bash tools/build_book.sh" in readme and "bash tools/test.sh" in readme
    assert "bash tools/test.sh" in (ROOT / ".ci" / "run").read_text()
    test_sh = (ROOT / "tools" / "test.sh").read_text()
    shown = re.search(r"`(python -m pytest tests book[^`]*)`", readme).group(1)
    for word in shown.split():
        assert word in test_sh, f"{word!r} is in README's test command but not in tools/test.sh"


def _setup_on_fake_colab(source: str, monkeypatch, capsys) -> tuple[list[str], str]:
    """Run the install part of a set-up cell in IPython as on Colab (``google.colab`` imported),
    recording the shell commands (expanded as IPython expands them) instead of running them:
    ``(commands, printed text)``."""
    import types

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    commands: list[str] = []
    monkeypatch.setattr(shell, "system", lambda cmd: commands.append(shell.var_expand(cmd)))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    install = source.split("import hopfield_lab")[0]
    assert shell.run_cell(install).success
    return commands, capsys.readouterr().out


def test_setup_cell_installs_once_and_asks_for_no_restart(monkeypatch, capsys):
    commands, printed = _setup_on_fake_colab(nbtool.setup_cell_source(), monkeypatch, capsys)
    assert len(commands) == 1 and " -m pip install " in commands[0] and "--no-deps" in commands[0]
    assert commands[0].startswith(sys.executable), "pip of the kernel's own Python"
    assert nbtool.PIP_SPEC.format(url=nbtool.repository_url()) in commands[0]
    assert "restart" not in printed, printed
    # what the cell did before (IPython's %pip magic, twice): the same test sees the defect
    old = (nbtool.setup_cell_source().replace("!{sys.executable} -m pip install", "%pip install")
           .replace(' "einops>=0.7"', '\n    %pip install -q "einops>=0.7"'))
    assert old.count("%pip") == 2
    _, printed_old = _setup_on_fake_colab(old, monkeypatch, capsys)
    assert printed_old.count("you may need to restart the kernel") == 2
