"""Lint the book: sources that would render wrong, and rendered pages that show raw markup.

    python tools/lint_book.py sources              # lint book/*.ipynb and book/*.md
    python tools/lint_book.py html _build/html     # lint a built book (tools/build_book.sh runs this)
    python tools/lint_book.py render OUT_DIR       # build the book WITHOUT executing it, then lint it
    python tools/lint_book.py render OUT_DIR --execute [--offline]   # execute it (quick mode), then lint it

Source rules (each a class of defect seen in this book):

* ``math-list``: a line inside ``$...$`` that starts with ``- ``, ``+ ``, ``* ``, ``> ``, ``#`` or
  ``1. ``: Markdown reads it as a list item, quote or heading and the equation breaks.
* ``glued-html``: an HTML comment with text after it on the same line: the whole line becomes a
  raw HTML block and renders as source text.
* ``fence``: unbalanced ``:::`` directive fences.
* ``exercise-word``: ``exercise {ref}`...``` renders "exercise Exercise 3"; and a hard-coded
  "exercise 3" points to nothing: use ``{ref}`label``` alone.
* ``doubled-word``: "the the".
* ``chapter-doc``: "chapter {doc}`06_paramixer`" prints the title without the number: write
  ``{numref}`chapter %s <ch-paramixer>``` (every chapter title carries the label ``(ch-NAME)=``).

HTML rules: text outside code, math and scripts must not contain ``$...$``, TeX commands
(``\\langle``...), ``:::``, ``{eq}``, ``{cite``, ``{doc}``, ``{ref}``, ``{numref}`` or ``<!--``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


@dataclass
class Problem:
    where: str
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: [{self.rule}] {self.text}"


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------
#: a code fence, also one that opens a list item ("2. ```python")
FENCE = re.compile(r"^\s*(?:(?:\d+[.)]|[-*+])\s+)?(```+|~~~+)")
_BLOCK_START = re.compile(r"^\s{0,3}(?:[-+*>]\s|#{1,6}\s|\d+[.)]\s)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_EX_REF = re.compile(r"\b[Ee]xercises?\s+\{ref\}")
_EX_NUM = re.compile(r"\b[Ee]xercises?\s+\d+(?:\.\d+)?\b")
_DOUBLED = re.compile(r"\b([A-Za-z]{2,})\s+\1\b", re.I)
_DOUBLED_OK = {"that", "had", "is"}  # "that that" etc. can be correct English
_CHAPTER_DOC = re.compile(r"\b[Cc]hapters?\s+\{doc\}")


def markdown_texts(path: Path) -> list[tuple[str, str]]:
    """(where, markdown text) of every Markdown cell of a notebook, or of a .md page."""
    if path.suffix == ".md":
        return [(path.name, path.read_text())]
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [(f"{path.name} cell {i}", c.source) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


def _strip_code(text: str) -> list[tuple[int, str]]:
    """Lines (number, text) outside code fences, with inline code spans blanked."""
    out, fence = [], None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            fence = None if fence and m.group(1).startswith(fence) else (fence or m.group(1))
            continue
        if fence is None:
            out.append((n, _CODE_SPAN.sub(lambda s: " " * len(s.group()), line)))
    return out


def lint_markdown(where: str, text: str) -> list[Problem]:
    problems = []
    lines = _strip_code(text)
    in_inline = False   # inside $...$ (or a $$...$$ opened mid-line) that began on an earlier line
    in_display = False  # inside a $$ ... $$ block opened at the start of a line (block math: safe)
    for n, line in lines:
        if in_inline and _BLOCK_START.match(line):
            problems.append(Problem(f"{where} line {n}", "math-list",
                                    f"a line inside math starts like Markdown block syntax: {line.strip()[:60]!r}; "
                                    "move the sign or operator to the end of the previous line"))
        # walk the $ signs of the line
        i = 0
        while i < len(line):
            if line.startswith("\\$", i):
                i += 2
                continue
            if line.startswith("$$", i):
                if in_display or (not in_inline and not line[:i].strip()):
                    in_display = not in_display  # block math: Markdown does not look inside
                else:
                    in_inline = not in_inline    # $$ inside a paragraph: inline math
                i += 2
                continue
            if line[i] == "$" and not in_display:
                in_inline = not in_inline
            i += 1
        if line.strip() == "" and in_inline:
            in_inline = False  # a blank line ends a paragraph: an unclosed $ is just a dollar
        stripped = line.strip()
        m = re.search(r"-->\s*(\S.*)$", stripped)
        if stripped.startswith("<!--") and m:
            problems.append(Problem(f"{where} line {n}", "glued-html",
                                    "text after an HTML comment on the same line renders as raw HTML: "
                                    "put the comment on its own line or drop it"))
        if _EX_REF.search(line):
            problems.append(Problem(f"{where} line {n}", "exercise-word",
                                    "'exercise {ref}`...`' renders as 'exercise Exercise N': drop the word"))
        elif _EX_NUM.search(line) and not stripped.startswith(":"):
            problems.append(Problem(f"{where} line {n}", "exercise-word",
                                    f"hard-coded {_EX_NUM.search(line).group()!r}: use {{ref}}`label` instead"))
        for m in _DOUBLED.finditer(re.sub(r"\$[^$]*\$", " MATH ", line)):
            if m.group(1).lower() not in _DOUBLED_OK:
                problems.append(Problem(f"{where} line {n}", "doubled-word", f"doubled word {m.group()!r}"))
    joined = "\n".join(line for _, line in lines)
    for m in _CHAPTER_DOC.finditer(joined):
        problems.append(Problem(f"{where} line {joined.count(chr(10), 0, m.start()) + 1}", "chapter-doc",
                                "'chapter {doc}`NN_x`' shows no number: use {numref}`chapter %s <ch-x>`"))
    opens = sum(1 for _, line in lines if re.match(r"^\s*:{3,}\{", line))
    closes = sum(1 for _, line in lines if re.match(r"^\s*:{3,}\s*$", line))
    if opens != closes:
        problems.append(Problem(where, "fence", f"{opens} ':::{{...}}' openings but {closes} ':::' closings"))
    return problems


def lint_sources(paths: list[Path] | None = None) -> list[Problem]:
    paths = paths or sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md"))
    return [p for path in paths for where, text in markdown_texts(path) for p in lint_markdown(where, text)]


# --------------------------------------------------------------------------------------------
# rendered HTML
# --------------------------------------------------------------------------------------------
_SKIP_TAGS = ["script", "style", "pre", "code", "kbd", "samp", "svg", "math", "textarea"]
_SKIP_CLASSES = ["math", "cell_input", "highlight", "headerlink", "cell_output", "output"]
_HTML_RULES = [
    ("raw-math", re.compile(r"\$[^$\s][^$]{0,200}?\$")),
    ("raw-tex", re.compile(r"\\(?:langle|rangle|frac|sum|mathrm|operatorname|alpha|beta|xi|sigma|left|right|begin)\b")),
    ("raw-directive", re.compile(r":::|\{(?:eq|cite(?::[tp])?|doc|ref|numref|math|exercise|solution)\}")),
    ("raw-comment", re.compile(r"<!--")),
    # a cross-reference label shown as text: "eq. (ch5-loss)" where a number belongs (figure
    # captions and code-cell docstrings cannot use {eq}: describe the equation instead)
    ("raw-label", re.compile(r"(?<![\w./#-])(?:fig-|eq-|ex-)?ch\d+-[a-z][\w-]*")),
]


def visible_text(html: str) -> str:
    """Text a reader sees in a page's article, outside code, math, scripts and cell outputs, plus
    the captions and alt texts of its figures (BeautifulSoup comes with the book's theme)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article.bd-article") or soup
    # figure captions and alt texts are written by authors even where they sit in a cell's output
    figures = [" ".join([fig.figcaption.get_text(" ") if fig.figcaption else ""] +
                        [img.get("alt", "") for img in fig.find_all("img")])
               for fig in article.find_all("figure")]
    for tag in article.find_all(_SKIP_TAGS):
        tag.decompose()
    for cls in _SKIP_CLASSES:
        for tag in article.select(f".{cls}"):
            tag.decompose()
    return " ".join([article.get_text(" "), *figures])


def lint_html(build_dir: Path) -> list[Problem]:
    problems = []
    pages = sorted((Path(build_dir) / "book").glob("*.html"))
    if not pages:
        return [Problem(str(build_dir), "no-pages", "no book/*.html pages: is this a built book?")]
    for page in pages:
        text = visible_text(page.read_text(errors="replace"))
        for rule, pattern in _HTML_RULES:
            for m in pattern.finditer(text):
                context = text[max(0, m.start() - 40): m.end() + 40].replace("\n", " ")
                problems.append(Problem(page.name, rule, f"...{context}..."))
    return problems


#: a 1x1 PNG: stands in for a figure output in the unexecuted render
_PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _render_sources(src: Path, placeholders: bool = True) -> None:
    """Copy the book's sources to ``src``; with ``placeholders``, every code cell with a myst-nb
    figure caption gets a placeholder image output, so that its figure (and ``{numref}`` to it)
    exists unexecuted."""
    import nbformat

    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_toc.yml", "references.bib"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "book", src / "book")
    # _config.yml's local Sphinx extension and the pages' style sheet
    shutil.copytree(ROOT / "tools" / "sphinxext", src / "tools" / "sphinxext")
    shutil.copytree(ROOT / "_static", src / "_static")
    if not placeholders:
        return
    for path in (src / "book").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.get("metadata", {}).get("mystnb", {}).get("figure"):
                cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _PIXEL, "text/plain": "<Figure>"})]
        nbformat.write(nb, path)


#: the environment of an executed build, as in tools/build_book.sh: quick mode, no progress bars
#: (a tqdm bar would be an empty widget in a static page), widgets replaced by their static twin
BUILD_ENV = {"HOPFIELD_LAB_QUICK": "1", "TQDM_DISABLE": "1", "HOPFIELD_LAB_STATIC": "1"}


def _run(cmd: list[str], what: str, env: dict | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def render(out_dir: Path, execute: bool = False, offline: bool = False) -> Path:
    """Build the book into ``out_dir``; returns the HTML folder. Sphinx warnings are errors, as in
    tools/build_book.sh. Built from a copy of the sources.

    ``execute=False``: no cell runs (fast: markup only); captioned figure cells get a placeholder
    output (see _render_sources). ``execute=True``: every chapter runs in quick mode as in
    tools/build_book.sh, with tools/figure_audit.py in its kernel (every PNG records its text sizes
    and raw TeX), and the slide decks are written to ``html/slides``. ``offline=True``: then
    tools/offline.py makes the build serve its own MathJax, reveal.js and icons."""
    import os

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = (ROOT / "_config.yml").read_text()
    cfg, n = re.subn(r"(?m)^(\s+execute_notebooks:\s*)\S+", r"\1" + ("force" if execute else "'off'"), cfg)
    if n != 1:
        raise SystemExit("_config.yml: no execute: execute_notebooks: entry to switch off")
    src = out_dir / "src"
    _render_sources(src, placeholders=not execute)
    (src / "_config.yml").write_text(cfg)
    html = out_dir / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)
    env = None
    if execute:
        sys.path.insert(0, str(ROOT / "tools"))
        import figure_audit
        env = {**os.environ, **BUILD_ENV, "IPYTHONDIR": str(figure_audit.ipython_dir(out_dir / "ipython"))}
    _run([sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(src), "--all",
          "-W", "-n", "--keep-going", "--path-output", str(out_dir)], "jupyter-book build", env)
    if execute:
        _run([sys.executable, str(ROOT / "tools" / "slides.py"), "--executed", str(out_dir / "_build" / "jupyter_execute"),
              "--out", str(html / "slides")], "tools/slides.py")
    if offline:
        _run([sys.executable, str(ROOT / "tools" / "offline.py"), "localize", str(html)], "tools/offline.py localize")
    return html


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("sources", "html", "render"):
        print(__doc__)
        return 2
    if argv[0] == "sources":
        problems = lint_sources()
    elif argv[0] == "html":
        problems = lint_html(Path(argv[1] if len(argv) > 1 else ROOT / "_build" / "html"))
    else:
        problems = lint_html(render(Path(argv[1]), execute="--execute" in argv, offline="--offline" in argv))
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
