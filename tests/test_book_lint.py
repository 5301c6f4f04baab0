"""The book's pages render right: sources that would break, and built pages that show raw markup
(tools/lint_book.py). The render test reads the session's one build of the book (the
``rendered_book`` fixture of conftest.py, shared with tests/test_browser.py)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import lint_book  # noqa: E402


def rules(text):
    return sorted({p.rule for p in lint_book.lint_markdown("t", text)})


@pytest.mark.parametrize("text,expected", [
    ("collapse: $a - b\n- c = d$. So", ["math-list"]),            # the chapter 6 defect
    ("collapse: $a - b -\nc = d$. So", []),
    ("$$\nE = a\n- b\n$$ (eq-label)", []),                          # block math: Markdown keeps out
    ("text $$a\n+ b$$ more", ["math-list"]),                         # $$ inside a paragraph is inline
    ("one $x$ two\n- a list item", []),
    ("<!-- colab badge -->[![Open](x.svg)](y)", ["glued-html"]),  # the badge defect
    ("<!-- a comment -->\n[![Open](x.svg)](y)", []),
    ("see exercise {ref}`ex-a`", ["exercise-word"]),
    ("exercise 2 says why", ["exercise-word"]),
    ("{ref}`ex-a` says why", []),
    ("the the energy", ["doubled-word"]),
    ("of $x$ of", []),
    (":::{exercise}\n:label: a\ntext\n", ["fence"]),
    ("```python\n- not math $x\n```", []),
    ("see chapter\n{doc}`06_paramixer`", ["chapter-doc"]),
    ("see {numref}`chapter %s <ch-paramixer>`", []),
])
def test_source_rules(text, expected):
    assert rules(text) == expected


def test_book_sources_lint_clean():
    problems = lint_book.lint_sources()
    assert not problems, "\n".join(map(str, problems))


def test_html_rules_see_only_what_readers_see():
    page = ('<article class="bd-article"><p>ok <span class="math">\\(\\langle x\\rangle\\)</span></p>'
            '<pre>$a$ :::</pre><p>broken: $\\langle I$ and {eq}`x`</p></article>')
    found = {rule for rule, pat in lint_book._HTML_RULES if pat.search(lint_book.visible_text(page))}
    assert found == {"raw-math", "raw-tex", "raw-directive"}


def test_html_rules_read_figure_captions_and_alt_text_even_inside_outputs():
    page = ('<article class="bd-article"><div class="cell_output"><figure><img alt="curve of fig-ch5-x" '
            'src="a.png"><figcaption>Loss, eq. (ch5-loss), per epoch</figcaption></figure>'
            '<p>printed ch5-out</p></div><p>see Fig. 5.1 and https://x.org/ch5-a.html</p></article>')
    text = lint_book.visible_text(page)
    labels = [m.group(0) for m in lint_book._HTML_RULES[-1][1].finditer(text)]
    assert lint_book._HTML_RULES[-1][0] == "raw-label" and labels == ["ch5-loss", "fig-ch5-x"]


@pytest.mark.slow
def test_rendered_book_shows_no_raw_markup(rendered_book):
    html = rendered_book
    assert len(list((html / "book").glob("*.html"))) >= 8
    problems = lint_book.lint_html(html)
    assert not problems, "\n".join(map(str, problems))
