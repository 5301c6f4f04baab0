"""Export every chapter as a Colab notebook: plain Markdown + LaTeX that Colab renders.

    python tools/colab_export.py colab              # the reader's/instructor's version (solutions collapsed)
    python tools/colab_export.py colab/student --student   # the student's version (no solutions)
    python tools/colab_export.py --check            # are the committed colab/ notebooks up to date?

Colab does not know MyST, so each Markdown cell is rewritten:

* chapter, section, equation and exercise numbers are written out as the book shows them
  ("# 6. Title", "## 6.2 Title", ``\\tag{6.3}`` in the equation, "(6.3)" for ``{eq}``);
* ``:::{exercise}`` becomes a headed block, ``:::{solution}`` a collapsed ``<details>`` block
  (removed with ``--student``), admonitions become block quotes (or ``<details>`` when they are
  dropdowns);
* ``{cite}`` becomes "Author (Year)" linked to the book's bibliography page; ``{doc}``, ``{ref}``
  and ``{numref}`` become links to the published pages.

Code cells are copied unchanged (outputs dropped), except that ``--student`` replaces every
region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) by
``raise NotImplementedError`` for the student to fill in. The set-up cell stays the first code
cell. Anything the converter does not know is an error, so new MyST syntax cannot slip through.

Why committed notebooks (``colab/``) and not a branch written by CI: Colab opens them from any
commit or fork without a workflow having run, instructors get both versions in their own copy,
and ``tests/test_colab_export.py`` fails when they are out of date.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import nb as nbtool  # noqa: E402
from lint_book import FENCE  # noqa: E402

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
STUDENT_STUB = ["# YOUR CODE HERE", "raise NotImplementedError(\"Exercise: fill in this part, then run the check cell below.\")"]
GENERATED_NOTE = ("*This notebook is generated from `{src}` by `tools/colab_export.py`: edit the source, not "
                  "this file. The same chapter online: [{title}]({url}).*")


class ExportError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# the book: chapters, numbers, labels, bibliography
# --------------------------------------------------------------------------------------------
@dataclass
class Label:
    kind: str           # chapter | section | equation | exercise | figure
    page: str           # e.g. "book/06_paramixer"
    number: str         # e.g. "6.2" ("" when not numbered)
    title: str = ""


@dataclass
class Book:
    pages: list[tuple[str, int | None]] = field(default_factory=list)   # (page, chapter number)
    titles: dict[str, str] = field(default_factory=dict)                 # page -> title
    labels: dict[str, Label] = field(default_factory=dict)
    bib: dict[str, tuple[str, str]] = field(default_factory=dict)        # key -> (authors, year)
    macros: dict[str, str] = field(default_factory=dict)                 # TeX macro -> expansion

    def url(self, page: str, anchor: str | None = None) -> str:
        return nbtool.pages_url() + page + ".html" + (f"#{anchor}" if anchor else "")


def toc_pages() -> list[tuple[str, int | None]]:
    """(page, chapter number or None) in _toc.yml order; numbered parts count on across parts."""
    pages, n, numbered = [], 0, False
    text = (ROOT / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", text, re.M).group(1)
    pages.append((root, None))
    for line in text.splitlines():
        if re.match(r"\s*-\s*caption:", line):
            numbered = False
        elif re.match(r"\s*numbered:\s*true", line):
            numbered = True
        m = re.match(r"\s*-\s*file:\s*(\S+)", line)
        if m:
            if numbered:
                n += 1
            pages.append((m.group(1), n if numbered else None))
    return pages


def tex_macros() -> dict[str, str]:
    """The book's MathJax macros (``_config.yml``, their one home): name -> expansion."""
    text = (ROOT / "_config.yml").read_text()
    block = re.search(r"^(\s+)macros:\s*\n((?:\1\s+.*\n)+)", text, re.M)
    pairs = re.findall(r'^\s+(\w+):\s*"(.*)"\s*$', block.group(2), re.M) if block else []
    return {name: value.replace("\\\\", "\\") for name, value in pairs}


def expand_macros(text: str, macros: dict[str, str]) -> str:
    """Write out the book's own TeX macros (Colab does not know them): ``\\R`` -> ``\\mathbb{R}``."""
    for name, value in macros.items():
        text = re.sub(rf"\\{name}(?![A-Za-z])", lambda _: value, text)
    return text


def _bib() -> dict[str, tuple[str, str]]:
    out = {}
    for m in re.finditer(r"@\w+\{([^,]+),(.*?)\n\}", (ROOT / "references.bib").read_text(), re.S):
        key, body = m.group(1).strip(), m.group(2)
        author = re.search(r"author\s*=\s*\{(.*?)\}\s*,?\s*\n", body, re.S)
        year = re.search(r"year\s*=\s*\{?(\d{4})", body)
        names = [a.split(",")[0].strip() for a in re.split(r"\s+and\s+", author.group(1))] if author else ["?"]
        names = [re.sub(r"[{}]|\\[\"'`^~]", "", n) for n in names]
        names = [re.sub(r"\\(\w)", r"\1", n) for n in names]
        short = names[0] if len(names) == 1 else (
            f"{names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} et al.")
        out[key] = (short, year.group(1) if year else "n.d.")
    return out


def read_page(page: str) -> nbformat.NotebookNode | None:
    path = ROOT / f"{page}.ipynb"
    return nbformat.read(path, as_version=4) if path.exists() else None


def markdown_of(page: str) -> list[str]:
    nb = read_page(page)
    if nb is not None:
        return [c.source for c in nb.cells if c.cell_type == "markdown"]
    path = ROOT / f"{page}.md"
    return [path.read_text()] if path.exists() else []


def figure_of(cell) -> dict | None:
    """The myst-nb figure options (``caption``, ``name``) of a code cell, or None."""
    fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
    return fig if cell.cell_type == "code" and fig and fig.get("caption") else None


_TARGET = re.compile(r"^\(([\w-]+)\)=\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_EQ_BLOCK_END = re.compile(r"^\$\$\s*\(([\w-]+)\)\s*$")
_DIRECTIVE = re.compile(r"^(\s*)(:{3,})\{([\w-]+)\}\s*(.*)$")


def _outside_code(lines: list[str]):
    """Yield (index, line) of lines outside ``` code fences."""
    fence = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m:
            fence = None if fence and m.group(1).startswith(fence) else (fence or m.group(1))
            continue
        if fence is None:
            yield i, line


def load_book() -> Book:
    book = Book(pages=toc_pages(), bib=_bib(), macros=tex_macros())
    for page, chap in book.pages:
        nb = read_page(page)
        for k, fig in enumerate(filter(None, map(figure_of, nb.cells if nb else [])), 1):
            if fig.get("name"):
                book.labels[fig["name"]] = Label("figure", page, f"{chap}.{k}" if chap else str(k),
                                                 fig["caption"])
        counts = {"section": [0, 0, 0], "equation": 0, "exercise": 0}
        pending: list[str] = []
        for text in markdown_of(page):
            lines = text.split("\n")
            for i, line in _outside_code(lines):
                if _TARGET.match(line):
                    pending.append(_TARGET.match(line).group(1))
                    continue
                h = _HEADING.match(line)
                if h:
                    level, title = len(h.group(1)), h.group(2).strip()
                    if level == 1:
                        book.titles.setdefault(page, title)
                        number, kind = (str(chap) if chap else ""), "chapter"
                    else:
                        sec = counts["section"]
                        if level - 2 < len(sec):
                            sec[level - 2] += 1
                            for j in range(level - 1, len(sec)):
                                sec[j] = 0
                        number = ".".join([str(chap)] + [str(s) for s in sec[: level - 1]]) if chap else ""
                        kind = "section"
                    for lab in pending:
                        book.labels[lab] = Label(kind, page, number, title)
                    pending = []
                    continue
                pending = [] if line.strip() else pending
                e = _EQ_BLOCK_END.match(line)
                if e:
                    counts["equation"] += 1
                    num = f"{chap}.{counts['equation']}" if chap else str(counts["equation"])
                    book.labels[e.group(1)] = Label("equation", page, num)
                d = _DIRECTIVE.match(line)
                if d and d.group(3) == "exercise":
                    counts["exercise"] += 1
                    num = f"{chap}.{counts['exercise']}" if chap else str(counts["exercise"])
                    label = next((re.match(r"\s*:label:\s*(\S+)", l).group(1) for l in lines[i + 1: i + 6]
                                  if re.match(r"\s*:label:", l)), None)
                    if label:
                        book.labels[label] = Label("exercise", page, num, d.group(4).strip())
    return book


# --------------------------------------------------------------------------------------------
# Markdown conversion
# --------------------------------------------------------------------------------------------
_ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
_ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error", "seealso"}


def _split_target(content: str) -> tuple[str | None, str]:
    m = re.match(r"^(.*?)\s*<([^<>]+)>$", content.strip(), re.S)
    return (m.group(1), m.group(2)) if m else (None, content.strip())


class Converter:
    def __init__(self, book: Book, page: str, chapter: int | None, student: bool):
        self.book, self.page, self.chapter, self.student = book, page, chapter, student
        self.sections = [0, 0, 0]
        self.exercise_labels: dict[str, Label] = {}

    # -- inline roles -------------------------------------------------------------------------
    def _page_of(self, target: str) -> str:
        return target if target.startswith("book/") else f"book/{target}"

    def _label(self, name: str) -> Label:
        if name not in self.book.labels:
            raise ExportError(f"{self.page}: unknown label {name!r}")
        return self.book.labels[name]

    def _link(self, text: str, lab_name: str) -> str:
        lab = self._label(lab_name)
        anchor = None if lab.kind == "chapter" else lab_name
        return f"[{text}]({self.book.url(lab.page, anchor)})"

    def _cite(self, role: str, keys: str) -> str:
        parts = []
        for key in (k.strip() for k in keys.split(",")):
            if key not in self.book.bib:
                raise ExportError(f"{self.page}: unknown citation key {key!r}")
            who, year = self.book.bib[key]
            parts.append((who, year))
        url = self.book.url("book/bibliography")
        if role == "cite:t":
            return "; ".join(f"[{who} ({year})]({url})" for who, year in parts)
        return "(" + "; ".join(f"[{who}, {year}]({url})" for who, year in parts) + ")"

    def role(self, m: re.Match) -> str:
        role, content = m.group(1), m.group(2)
        if role in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts"):
            return self._cite("cite:t" if role.startswith("cite:t") else "cite:p", content)
        if role == "eq":
            lab = self._label(content.strip())
            return f"({lab.number})"
        if role == "math":
            return f"${content}$"
        if role == "doc":
            text, target = _split_target(content)
            page = self._page_of(target)
            if page not in self.book.titles and not (ROOT / f"{page}.md").exists():
                raise ExportError(f"{self.page}: {{doc}} to unknown page {target!r}")
            return f"[{text or self.book.titles.get(page, target)}]({self.book.url(page)})"
        if role == "ref":
            text, target = _split_target(content)
            lab = self._label(target)
            if text is None:
                text = (f"Exercise {lab.number}" if lab.kind == "exercise" else
                    f"Figure {lab.number}" if lab.kind == "figure" else
                        f"Section {lab.number}" if lab.kind == "section" and lab.number else lab.title)
            return self._link(text, target)
        if role == "numref":
            text, target = _split_target(content)
            lab = self._label(target)
            shown = (text or "%s").replace("%s", lab.number).replace("{number}", lab.number)
            return self._link(shown, target)
        raise ExportError(f"{self.page}: no Colab form for the role {{{role}}}")

    def inline(self, text: str) -> str:
        return _ROLE.sub(self.role, text)

    # -- blocks -------------------------------------------------------------------------------
    def convert(self, text: str) -> str:
        lines = text.split("\n")
        return expand_macros("\n".join(self._blocks(lines)).strip("\n"), self.book.macros)

    def _blocks(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i, fence = 0, None
        while i < len(lines):
            line = lines[i]
            m = FENCE.match(line)
            if m:
                fence = None if fence and m.group(1).startswith(fence) else (fence or m.group(1))
                out.append(line)
                i += 1
                continue
            if fence:
                out.append(line)
                i += 1
                continue
            if _TARGET.match(line):
                i += 1
                continue
            d = _DIRECTIVE.match(line)
            if d:
                indent, colons, name, arg = d.groups()
                j, options = i + 1, {}
                while j < len(lines) and re.match(r"^\s*:(\w[\w-]*):\s*(.*)$", lines[j]):
                    k, v = re.match(r"^\s*:(\w[\w-]*):\s*(.*)$", lines[j]).groups()
                    options[k] = v
                    j += 1
                body, depth = [], 0
                while j < len(lines):
                    if re.match(rf"^\s*{colons}\s*$", lines[j]) and depth == 0:
                        break
                    inner = _DIRECTIVE.match(lines[j])
                    if inner and inner.group(2) == colons:
                        depth += 1
                    elif re.match(rf"^\s*{colons}\s*$", lines[j]):
                        depth -= 1
                    body.append(lines[j])
                    j += 1
                else:
                    raise ExportError(f"{self.page}: unclosed {colons}{{{name}}}")
                out.extend(self._directive(name, arg, options, body))
                i = j + 1
                continue
            h = _HEADING.match(line)
            if h:
                out.append(self._heading(len(h.group(1)), h.group(2)))
                i += 1
                continue
            e = _EQ_BLOCK_END.match(line)
            if e:
                out.append(f"\\tag{{{self._label(e.group(1)).number}}}")
                out.append("$$")
                i += 1
                continue
            out.append(self.inline(line))
            i += 1
        return out

    def _heading(self, level: int, title: str) -> str:
        title = self.inline(title)
        if not self.chapter:
            return "#" * level + " " + title
        if level == 1:
            return f"# {self.chapter}. {title}"
        if level - 2 < len(self.sections):
            self.sections[level - 2] += 1
            for j in range(level - 1, len(self.sections)):
                self.sections[j] = 0
        number = ".".join([str(self.chapter)] + [str(s) for s in self.sections[: level - 1]])
        return "#" * level + f" {number} {title}"

    def _directive(self, name: str, arg: str, options: dict, body: list[str]) -> list[str]:
        inner = self._blocks(body)
        if name == "exercise":
            label = options.get("label")
            lab = self.book.labels.get(label) if label else None
            number = lab.number if lab else "?"
            title = f"Exercise {number}" + (f": {self.inline(arg)}" if arg else "")
            return ["", f"#### {title}", "", *inner, ""]
        if name == "solution":
            if self.student:
                return []
            target = arg.strip()
            number = self._label(target).number if target else "?"
            return ["", f"<details><summary><b>Solution to Exercise {number}</b> (click to show)</summary>", "",
                    *inner, "", "</details>", ""]
        if name in ("admonition", "dropdown") or name in _ADMONITIONS:
            title = self.inline(arg) if arg else name.capitalize()
            if name == "dropdown" or "dropdown" in options.get("class", ""):
                return ["", f"<details><summary><b>{title}</b> (click to show)</summary>", "", *inner, "",
                        "</details>", ""]
            quoted = [("> " + l) if l.strip() else ">" for l in inner]
            return ["", f"> **{title}**", ">", *quoted, ""]
        raise ExportError(f"{self.page}: no Colab form for the directive {{{name}}}")


# --------------------------------------------------------------------------------------------
# notebooks
# --------------------------------------------------------------------------------------------
def student_code(source: str) -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region by a stub."""
    out, skipping = [], False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == SOLUTION_BEGIN:
            if skipping:
                raise ExportError("nested ### BEGIN SOLUTION")
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUDENT_STUB)
            skipping = True
        elif stripped == SOLUTION_END:
            if not skipping:
                raise ExportError("### END SOLUTION without ### BEGIN SOLUTION")
            skipping = False
        elif not skipping:
            out.append(line)
    if skipping:
        raise ExportError("### BEGIN SOLUTION without ### END SOLUTION")
    return "\n".join(out)


_LEFTOVER = [
    (re.compile(r"\{[\w:-]+\}`"), "a MyST role"),
    (re.compile(r"(?m)^\s*:{3,}"), "a ::: fence"),
    (re.compile(r"(?m)^\s*:(label|class|name):"), "a directive option"),
    (re.compile(r"(?m)^\$\$\s*\([\w-]+\)"), "an equation label"),
    (re.compile(r"(?m)^\([\w-]+\)=\s*$"), "a target"),
]


def myst_leftovers(text: str) -> list[str]:
    """MyST syntax left in (Colab-bound) Markdown, outside code fences."""
    lines = [line for _, line in _outside_code(text.split("\n"))]
    plain = re.sub(r"`[^`\n]*`", "", "\n".join(lines))
    return [f"{what}: {m.group()!r}" for pat, what in _LEFTOVER for m in pat.finditer(plain)]


def export_chapter(book: Book, page: str, chapter: int | None, student: bool) -> nbformat.NotebookNode:
    src = read_page(page)
    nb = copy.deepcopy(src)
    conv = Converter(book, page, chapter, student)
    cells, figures = [], 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if nbtool.BADGE_MARK in cell.source:
                title = book.titles.get(page, page)
                cell.source = GENERATED_NOTE.format(src=f"{page}.ipynb", title=title, url=book.url(page))
            else:
                cell.source = conv.convert(cell.source)
                if not cell.source.strip():
                    continue
                bad = myst_leftovers(cell.source)
                if bad:
                    raise ExportError(f"{page}: MyST left after conversion: {bad[:3]}")
            cell.metadata = {}
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if student:
                cell.source = student_code(cell.source)
            fig = figure_of(cell)
            if fig:
                figures += 1
                number = f"{chapter}.{figures}" if chapter else str(figures)
                cells.append(cell)
                caption = expand_macros(conv.inline(fig["caption"]), book.macros)
                md = nbformat.v4.new_markdown_cell(f"**Figure {number}.** {caption}")
                md.id = f"{cell.id}-caption"[:64]  # stable: a re-export is byte-identical
                cells.append(md)
                continue
        cells.append(cell)
    nb.cells = cells
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"},
                   "accelerator": "GPU",
                   "colab": {"provenance": [], "name": Path(page).name + ".ipynb"}}
    return nb


def chapters(book: Book) -> list[tuple[str, int | None]]:
    return [(p, n) for p, n in book.pages if (ROOT / f"{p}.ipynb").exists()]


def export_all(out_dir: Path, student: bool = False) -> list[Path]:
    book = load_book()
    written = []
    for page, number in chapters(book):
        nb = export_chapter(book, page, number, student)
        path = Path(out_dir) / f"{page}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        written.append(path)
    return written


def stale(committed: Path = ROOT / nbtool.COLAB_DIR) -> list[str]:
    """Committed Colab notebooks that differ from a fresh export (empty list: up to date)."""
    book = load_book()
    problems = []
    for student, base in ((False, committed), (True, committed / "student")):
        for page, number in chapters(book):
            want = nbformat.writes(export_chapter(book, page, number, student))
            path = base / f"{page}.ipynb"
            if not path.exists():
                problems.append(f"{path} is missing")
            elif nbformat.writes(nbformat.read(path, as_version=4)) != want:
                problems.append(f"{path} is out of date")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", help="where to write the notebooks (their book/ sub-folder)")
    ap.add_argument("--student", action="store_true", help="drop solutions, stub out solution code")
    ap.add_argument("--check", action="store_true", help="check that colab/ is up to date")
    ap.add_argument("--all", action="store_true", help="write colab/ and colab/student/ (the committed copies)")
    args = ap.parse_args(argv)
    try:
        if args.check:
            problems = stale()
            for p in problems:
                print(p)
            if problems:
                print("run: python tools/colab_export.py --all")
            return 1 if problems else 0
        if args.all:
            n = export_all(ROOT / nbtool.COLAB_DIR) + export_all(ROOT / nbtool.COLAB_DIR / "student", student=True)
        elif args.out_dir:
            n = export_all(Path(args.out_dir), student=args.student)
        else:
            ap.print_help()
            return 2
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(n)} notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
