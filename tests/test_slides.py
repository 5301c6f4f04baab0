"""tools/slides.py: a chapter's reveal.js deck (title and learning goals, a slide per section with
its display equations, figures with captions, checks for understanding, summary, exercise titles)
from a small executed notebook; ``slide``/``no-slide`` tags; MyST converted; inputs hidden."""
import base64
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_export as cx  # noqa: E402
import nb as nbtool  # noqa: E402
import slides  # noqa: E402

PAGE = "book/09_toy"
# a 1x1 PNG, base64: stands for a figure
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

TITLE = """(ch-toy)=
# A toy chapter

Opening text that is not on the title slide.

:::{admonition} Chapter at a glance
:class: tip
**Learning goals.** After this chapter you can
1. store a pattern in $W$;
2. find it again.

**Prerequisites.** {numref}`Chapter %s <ch-toy>`.
:::"""
SECTION = """## Storing patterns

The weights are a sum of outer products over the $K$ patterns, one for each pattern that the
network stores. Everything else in this paragraph is left for the book.

$$
W = \\frac1N \\sum_\\mu \\xi^\\mu \\xi^{\\mu\\top}, \\qquad x \\in \\R^N
$$ (toy-w)

Text between the equations, with {eq}`toy-w` and {cite}`hopfield1982neural`.

$$ E = -\\tfrac12 x^\\top W x $$

::::{admonition} Check your understanding
:class: hint
Is $W$ symmetric? (a) yes (b) no
:::{admonition} Answer
:class: dropdown
(a): a sum of outer products $\\xi\\xi^\\top$.
:::
::::"""
SUMMARY = """## Summary

- Hebbian weights store patterns, eq. {eq}`toy-w`.

## Exercises

:::{exercise} Count the flips (coding)
:label: toy-ex-flips
Count them.
:::

:::{solution} toy-ex-flips
:class: dropdown
SECRET SOLUTION TEXT
:::"""


def _code(source, outputs=(), tags=(), figure=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    if tags:
        cell.metadata["tags"] = list(tags)
    if figure:
        cell.metadata["mystnb"] = {"figure": figure, "image": {"alt": "a dot"}}
    return cell


def _image():
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": PNG, "text/plain": "<Figure size 10x10 with 1 Axes>"}}


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def toy_notebook():
    md = nbformat.v4.new_markdown_cell
    hidden = md("## A hidden section\n\nHIDDEN MARKDOWN")
    hidden.metadata["tags"] = ["no-slide"]
    forced = md("A remark the deck must show: FORCED MARKDOWN.")
    forced.metadata["tags"] = ["slide"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        md(TITLE),
        md(nbtool.colab_badge_source(Path(f"{PAGE}.ipynb"))),
        _code("import hopfield_lab as hl  # SETUP SOURCE", [_stream("quick mode\n")]),
        md(SECTION),
        _code("plot_weights()  # PLOT SOURCE", [_stream("PRINTED NUMBER 0.123\n"), _image()],
              figure={"caption": "Hebbian weights of $K$ patterns, eq. {eq}`toy-w`.", "name": "fig-toy-w"}),
        _code("plot_other()", [_image()], tags=["no-slide"]),
        _code("print('table')", [_stream("FORCED TABLE\n")], tags=["slide"]),
        forced,
        hidden,
        md(SUMMARY),
    ]
    return nb


def toy_book():
    """The labels the toy chapter uses, as tools/colab_export.load_book() would find them."""
    book = cx.Book(pages=[("book/intro", None), (PAGE, 9)], bib=cx._bib(), macros=cx.tex_macros())
    book.titles[PAGE] = "A toy chapter"
    book.labels.update({
        "ch-toy": cx.Label("chapter", PAGE, "9", "A toy chapter"),
        "toy-w": cx.Label("equation", PAGE, "9.1"),
        "toy-ex-flips": cx.Label("exercise", PAGE, "9.1", "Count the flips (coding)"),
        "fig-toy-w": cx.Label("figure", PAGE, "9.1", "Hebbian weights"),
    })
    return book


@pytest.fixture(scope="module")
def deck():
    return slides.slide_notebook(toy_notebook(), toy_book(), PAGE, 9,
                                 chapter_url="https://x.test/book/09_toy.html", colab_url="https://colab.test/09")


def _slides(deck):
    """Slides as lists of cells: a 'slide' or 'subslide' cell starts a new one."""
    out = []
    for c in deck.cells:
        if c.metadata["slideshow"]["slide_type"] in ("slide", "subslide"):
            out.append([])
        out[-1].append(c)
    return out


def _text(cells):
    return "\n".join(c.source if c.cell_type == "markdown" else str(c.outputs) for c in cells)


def test_title_slide_has_number_title_goals_and_links(deck):
    first = _text(_slides(deck)[0])
    assert first.startswith("# 9. A toy chapter")
    assert "**Learning goals.**" in first and "2. find it again." in first
    assert "Prerequisites" not in first and "Opening text" not in first
    assert "[the chapter](https://x.test/book/09_toy.html)" in first and "https://colab.test/09" in first
    assert deck.cells[0].metadata["slideshow"]["slide_type"] == "slide"


def test_section_slide_has_lead_and_display_equations(deck):
    sec = _text(_slides(deck)[1])
    assert sec.startswith("## 9.1 Storing patterns")
    assert "over the $K$ patterns, one for each pattern that the\nnetwork stores." in sec
    assert "left for the book" not in sec and "Text between" not in sec
    assert "\\tag{9.1}" in sec and "E = -\\tfrac12 x^\\top W x" in sec
    assert "\\mathbb{R}^N" in sec, "the book's TeX macros are written out"


def test_figures_questions_and_forced_cells_get_subslides(deck):
    shown = _slides(deck)
    kinds = [s[0].metadata["slideshow"]["slide_type"] for s in shown]
    texts = [_text(s) for s in shown]
    fig = next(s for s in shown if s[0].cell_type == "code" and PNG in str(s[0].outputs))
    assert fig[0].metadata["slideshow"]["slide_type"] == "subslide"
    assert [o["output_type"] for o in fig[0].outputs] == ["display_data"], "only the image, no printed text"
    assert fig[0].source == "", "no code in the deck"
    assert fig[1].source == "**Figure 9.1.** Hebbian weights of $K$ patterns, eq. (9.1)."
    assert sum(PNG in t for t in texts) == 1, "the no-slide figure is left out"
    check = next(t for t in texts if "Check your understanding" in t)
    assert "Is $W$ symmetric?" in check and "<details>" in check, "the answer stays folded"
    assert any("FORCED TABLE" in t for t in texts) and any("FORCED MARKDOWN" in t for t in texts)
    assert not any("PRINTED NUMBER" in t or "quick mode" in t for t in texts), "untagged printed text stays out"
    assert not any("HIDDEN" in t for t in texts)
    assert kinds.count("slide") == 4   # title, section, summary, exercises


def test_a_cell_with_two_figures_gives_two_subslides():
    nb = toy_notebook()
    nb.cells[4].outputs.append(nbformat.from_dict(_image()))
    shown = _slides(slides.slide_notebook(nb, toy_book(), PAGE, 9))
    figs = [s for s in shown if s[0].cell_type == "code" and PNG in str(s[0].outputs)]
    assert len(figs) == 2 and all(len(f[0].outputs) == 1 for f in figs)
    assert len(figs[0]) == 1 and figs[1][1].source.startswith("**Figure 9.1.**"), "caption under the last one"


def test_summary_and_exercise_titles_without_solutions(deck):
    # 9.2 is the section left out with 'no-slide': the numbers stay the book's
    texts = [_text(s) for s in _slides(deck)]
    summary = next(t for t in texts if t.startswith("## 9.3 Summary"))
    assert "Hebbian weights store patterns, eq. (9.1)." in summary
    exercises = next(t for t in texts if t.startswith("## 9.4 Exercises"))
    assert "- Exercise 9.1: Count the flips (coding)" in exercises
    everything = "\n".join(texts)
    assert "SECRET SOLUTION" not in everything
    assert not cx.myst_leftovers(everything), cx.myst_leftovers(everything)


def test_no_learning_goals_is_an_error():
    nb = toy_notebook()
    nb.cells[0].source = nb.cells[0].source.replace("**Learning goals.**", "Goals:")
    with pytest.raises(slides.SlideError, match="Learning goals"):
        slides.slide_notebook(nb, toy_book(), PAGE, 9)


def test_blocks_and_first_sentences():
    kinds = [b.kind for b in slides.blocks("# T\n\npara one\nstill\n\n$$\na\n$$\n> q\n> r\n\n"
                                           "<details><summary>s</summary>\n\nx\n\n</details>\n```python\n$$\n```")]
    assert kinds == ["heading", "para", "math", "quote", "details", "code"]
    assert slides.first_sentences("Short. Then a second sentence that is long enough to keep going on. Third.",
                                  at_least=20) == "Short. Then a second sentence that is long enough to keep going on."
    assert slides.first_sentences("We use $x. Y$ here. Next one.", at_least=10) == "We use $x. Y$ here."


def test_deck_html_uses_the_given_reveal_prefix(deck, tmp_path):
    pytest.importorskip("nbconvert", reason="requirements.txt installs nbconvert for the slides")
    html = slides.render(deck, slides.Assets(reveal_prefix="file:///opt/reveal"))
    assert "file:///opt/reveal/dist/reveal.js" in html and "unpkg.com/reveal.js" not in html
    assert html.count('<section') >= 6
    assert "PLOT SOURCE" not in html and "SETUP SOURCE" not in html, "inputs are hidden"
    assert "Hebbian weights of" in html and PNG[:40] in html
    assert "max-height: 58vh" in html
    (tmp_path / "deck.html").write_text(html)


def test_build_writes_the_deck_where_the_site_publishes_it(tmp_path):
    pytest.importorskip("nbconvert", reason="requirements.txt installs nbconvert for the slides")
    executed = tmp_path / "jupyter_execute"
    (executed / "book").mkdir(parents=True)
    nbformat.write(toy_notebook(), executed / f"{PAGE}.ipynb")
    out = slides.build(PAGE, 9, toy_book(), executed, tmp_path / "html" / "slides")
    assert out == tmp_path / "html" / "slides" / "09_toy.slides.html" and out.exists()
    assert slides.deck_url(PAGE) == nbtool.pages_url() + "slides/09_toy.slides.html"
    with pytest.raises(slides.SlideError, match="build the book first"):
        slides.build("book/10_missing", 10, toy_book(), executed, tmp_path)


@pytest.mark.parametrize("page,number", cx.chapters(cx.load_book()), ids=lambda v: str(v))
def test_every_chapter_makes_a_deck(page, number):
    """Every chapter's source (unexecuted: no figures) has what a deck needs: learning goals,
    sections, a summary and exercises."""
    deck = slides.slide_notebook(cx.read_page(page), cx.load_book(), page, number)
    heads = [c.source.split("\n", 1)[0] for c in deck.cells if c.metadata["slideshow"]["slide_type"] == "slide"]
    assert heads[0].startswith(f"# {number}. ")
    assert any(re.match(rf"## {number}\.\d+ Summary", h) for h in heads)
    assert any(re.match(rf"## {number}\.\d+ Exercises", h) for h in heads)
    assert len(heads) >= 5


def test_a_slide_too_long_for_the_frame_is_split_at_block_boundaries():
    items = "\n".join(f"{k}. item number {k}: " + "words " * 30 for k in range(1, 7))
    text = "## 5.7 Summary\n\n" + "A first paragraph. " * 20 + "\n\n" + items + "\n\n$$\nE = -x\n$$"
    cell = slides._md(text, "slide")
    parts = slides.split_long(cell, limit=500)
    assert len(parts) > 2
    assert [p.metadata["slideshow"]["slide_type"] for p in parts] == ["slide"] + ["subslide"] * (len(parts) - 1)
    assert parts[0].source.startswith("## 5.7 Summary\n\n")
    assert all(p.source.startswith("## 5.7 Summary (continued)\n\n") for p in parts[1:])
    assert all(slides._slide_chars(p.source) <= 500 + 40 for p in parts)   # + the heading
    body = [re.sub(r"^## 5.7 Summary( \(continued\))?\n\n", "", p.source) for p in parts]
    assert "\n\n".join(body).replace("\n\n", "\n") == text.split("\n\n", 1)[1].replace("\n\n", "\n")
    assert all(line.startswith(("A first", "$$", "E =")) or re.match(r"^\d\. item", line)
               for b in body for line in b.split("\n") if line)   # list items are never cut
    short = slides._md("## Short\n\nfits.", "slide")
    assert slides.split_long(short) == [short]
    folded = slides._md("## Check\n\nQ?\n\n<details>\n" + "answer " * 400 + "\n</details>", "subslide")
    assert slides.split_long(folded) == [folded]        # a folded answer takes no room
