"""tools/colab_export.py: Colab notebooks with no MyST left, code unchanged, solutions hidden or
gone, and the committed copies in colab/ in sync with the chapters."""
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_export as cx  # noqa: E402
import nb as nbtool  # noqa: E402

BOOK = cx.load_book()
CHAPTERS = cx.chapters(BOOK)


def _solutions(source_nb):
    """Lines that occur only inside :::{solution} blocks of a chapter (and are long enough to
    be telling)."""
    text = "\n".join(c.source for c in source_nb.cells if c.cell_type == "markdown")
    pattern = r"(?ms)^:{3,}\{solution\}[^\n]*\n(.*?)^:{3,}\s*$"
    rest = re.sub(pattern, "", text)
    bodies = re.findall(pattern, text)
    return [ln.strip() for body in bodies for ln in body.split("\n")
            if len(ln.strip()) > 25 and not ln.strip().startswith(":") and ln.strip() not in rest]


@pytest.mark.parametrize("page,number", CHAPTERS, ids=[p for p, _ in CHAPTERS])
@pytest.mark.parametrize("student", [False, True], ids=["reader", "student"])
def test_export_has_no_myst_and_keeps_code(page, number, student):
    src = cx.read_page(page)
    out = cx.export_chapter(BOOK, page, number, student)
    for cell in out.cells:
        if cell.cell_type == "markdown":
            assert not cx.myst_leftovers(cell.source), cx.myst_leftovers(cell.source)
            assert "{eq}" not in cell.source and "{cite" not in cell.source
    code_in = [c.source for c in src.cells if c.cell_type == "code"]
    code_out = [c.source for c in out.cells if c.cell_type == "code"]
    assert code_out[0] == nbtool.setup_cell_source(), "the set-up cell must come first"
    if student:
        assert code_out == [cx.student_code(c) for c in code_in]
    else:
        assert code_out == code_in, "a code cell changed"
    assert not any(c.get("outputs") for c in out.cells if c.cell_type == "code")
    md = "\n".join(c.source for c in out.cells if c.cell_type == "markdown")
    assert md.startswith(f"# {number}. "), "the chapter number is written out"


@pytest.mark.parametrize("page,number", CHAPTERS, ids=[p for p, _ in CHAPTERS])
def test_student_export_has_no_solution_text(page, number):
    src = cx.read_page(page)
    solutions = _solutions(src)
    assert solutions, f"{page}: expected solutions to check"
    reader = "\n".join(c.source for c in cx.export_chapter(BOOK, page, number, False).cells)
    student_nb = cx.export_chapter(BOOK, page, number, True)
    student = "\n".join(c.source for c in student_nb.cells)
    assert "<details><summary><b>Solution to Exercise" in reader
    assert "Solution to Exercise" not in student
    for line in solutions:
        conv = cx.expand_macros(cx.Converter(BOOK, page, number, False).inline(line), BOOK.macros)
        assert conv not in student, f"solution text left in the student notebook: {line[:70]!r}"
    assert cx.SOLUTION_BEGIN not in student and cx.SOLUTION_END not in student


def test_numbers_match_the_book():
    out = cx.export_chapter(BOOK, "book/06_paramixer", 6, False)
    md = "\n".join(c.source for c in out.cells if c.cell_type == "markdown")
    assert "## 6.2 Fast hidden layers" in md
    assert "\\tag{6.1}" in md and "eq. (6.2)" in md
    assert re.search(r"#### Exercise 6\.1: Untied weights have no energy", md)
    assert "[chapter 3](https://hopfield-lab.github.io/hopfield-lab/book/03_lagrangians.html)" in md
    assert "[Tolstikhin et al., 2021](https://hopfield-lab.github.io/hopfield-lab/book/bibliography.html)" in md
    assert "\\mathbb{R}" in md and not re.search(r"\\R(?![A-Za-z])", md), "the book's \\R macro is written out"


def test_student_code_replaces_solution_regions():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    y = x + 1\n    ### END SOLUTION\n    return y"
    out = cx.student_code(src)
    assert "x + 1" not in out and "    raise NotImplementedError(" in out and out.endswith("return y")
    with pytest.raises(cx.ExportError):
        cx.student_code("### BEGIN SOLUTION\nx = 1")


def test_unknown_syntax_is_an_error():
    conv = cx.Converter(BOOK, "book/06_paramixer", 6, False)
    with pytest.raises(cx.ExportError, match="role"):
        conv.convert("see {glue:text}`x`")
    with pytest.raises(cx.ExportError, match="directive"):
        conv.convert(":::{figure} x.png\ncaption\n:::")
    with pytest.raises(cx.ExportError, match="unknown label"):
        conv.convert("{eq}`no-such-equation`")


def test_dropdown_admonition_becomes_details_and_others_quotes():
    conv = cx.Converter(BOOK, "book/06_paramixer", 6, False)
    out = conv.convert(":::{admonition} Answer\n:class: dropdown\n(b), because $x$.\n:::\n\n"
                       ":::{admonition} Check\n:class: tip\nWhich one?\n:::")
    assert "<details><summary><b>Answer</b>" in out and "> **Check**" in out and "> Which one?" in out


def test_committed_colab_notebooks_are_up_to_date():
    problems = cx.stale()
    assert not problems, "\n".join(problems) + "\nrun: python tools/colab_export.py --all"


def test_badges_and_launch_buttons_open_the_export():
    for page, _ in CHAPTERS:
        url = nbtool.colab_url(ROOT / f"{page}.ipynb")
        assert url.endswith(f"/{nbtool.COLAB_DIR}/{page}.ipynb")
        assert (ROOT / nbtool.COLAB_DIR / f"{page}.ipynb").exists()
    assert re.search(rf"(?m)^\s+path_to_book:\s*{nbtool.COLAB_DIR}\s*$", (ROOT / "_config.yml").read_text())


@pytest.mark.parametrize("page,number", CHAPTERS, ids=[p for p, _ in CHAPTERS])
def test_figure_captions_follow_their_figures(page, number):
    src = cx.read_page(page)
    out = cx.export_chapter(BOOK, page, number, False)
    captions = [cx.figure_of(c)["caption"] for c in src.cells if cx.figure_of(c)]
    shown = [c.source for c in out.cells if c.cell_type == "markdown" and c.source.startswith("**Figure ")]
    assert len(shown) == len(captions)
    for k, text in enumerate(shown, 1):
        assert text.startswith(f"**Figure {number}.{k}.** ")
