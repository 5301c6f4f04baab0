"""Write an nbgrader course from the chapters: one assignment per chapter, one per problem set.

    python tools/nbgrader_export.py COURSE          # COURSE/source/<assignment>/<assignment>.ipynb + nbgrader_config.py
    python tools/nbgrader_export.py COURSE --list   # ... and print every assignment with its points
    python tools/nbgrader_export.py --guide-table   # the table of assignments in book/instructors.md

The third flavour of the chapters, next to the instructor and student Colab notebooks
(``tools/colab_export.py``, whose Markdown conversion it reuses): the *source* notebooks of an
nbgrader course, with the solutions in them. ``nbgrader generate_assignment`` strips them into
the release version (``release/``), the one students get.

A chapter's assignment, ``chNN_name``, holds only what its exercises need, so that autograding a
submission takes seconds (the whole chapter is the student's reading, on the pages or in its Colab
notebook; the header links to it):

1. a header: the chapter, the points, how to work on Colab (read-only);
2. the set-up cell of the chapter (the Colab one: on Colab it installs the library) and the
   chapter's first code cell, its imports and mode constants (read-only);
3. the auto-checked coding exercise: its task (the chapter's "Your turn" paragraph or "Coding
   exercise" box, read-only), the solution cell (its ``### BEGIN SOLUTION`` region is what nbgrader
   replaces by ``raise NotImplementedError``), and an **autograded test cell** worth
   ``CHECK_POINTS`` that runs the chapter's check through :func:`hopfield_lab.exercises.graded`:
   the same one-line verdict as in the book, and on a wrong answer an ``AssertionError`` whose
   message names the typical mistake (nbgrader deducts the points and shows it in the feedback);
4. every written exercise of the chapter (``:::{exercise}``): its statement (read-only) and a
   **manually graded answer cell** worth ``WRITTEN_POINTS``, whose source holds the book's
   solution and the guide's grading note; nbgrader replaces it by "YOUR ANSWER HERE".

A problem set of the instructor's guide (``### Problem set N`` in ``book/instructors.md``),
``psN``, holds the set-up cell and, for each exercise it lists, the statement and a manually
graded answer cell (``WRITTEN_POINTS``; the guide grades every exercise out of 10); its grading
note is the guide's text after the exercise's reference. The problem sets' coding work is
open-ended (plots, studies), so it is graded by hand; their chapters' assignments hold the
autograded parts.

The checks print a verdict, never the expected formula, so the test cells are visible: a student
sees the same check as in the book. A check cell that holds ``### BEGIN HIDDEN TESTS`` keeps the
region, which nbgrader hides from students and runs when grading.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import colab_export as cx  # noqa: E402
import nb as nbtool  # noqa: E402

CHECK_POINTS = 10      # the autograded coding exercise of a chapter
WRITTEN_POINTS = 10    # each written exercise, as the guide's problem sets grade them
COURSE_ID = "hopfield-lab"
GUIDE = "book/instructors"
_CHECK_CELL = re.compile(r"^\s*(demo\.check_\w+)\((\w+)\)\s*;?\s*$")
_TASK_START = re.compile(r"^\*\*Your turn\.\*\*|^:::\{admonition\} Coding exercise", re.M)
_PS_HEADING = re.compile(r"^### Problem set (\d+): (.*)$", re.M)
_PS_ITEM = re.compile(r"^- \{ref\}`([\w-]+)` \(([^)]*)\)\.\s*(.*)$")

CONFIG = '''\
# nbgrader configuration of the Hopfield Lab course, written by tools/nbgrader_export.py.
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "{course}"
# the stub that replaces a solution region: the same words as the student Colab notebooks
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# an assignment executes in seconds (quick mode); a kernel that hangs is stopped after this
c.ExecutePreprocessor.timeout = 300
'''


@dataclass
class Written:
    """One written exercise: its label, kind ("coding", "conceptual", ...), statement and key."""
    label: str
    kind: str
    statement: str      # Markdown (Colab form)
    solution: str       # Markdown: the book's solution, "" when it has none


@dataclass
class Assignment:
    name: str
    notebook: nbformat.NotebookNode

    def points(self) -> tuple[int, int]:
        """(autograded, manually graded) points."""
        auto = manual = 0
        for cell in self.notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                if cell.cell_type == "code" and not meta.get("solution"):
                    auto += meta["points"]
                else:
                    manual += meta["points"]
        return auto, manual


# --------------------------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------------------------
def _cell(kind: str, source: str, grade_id: str, *, solution=False, grade=False, locked=False,
          points: int | None = None) -> nbformat.NotebookNode:
    """A cell with nbgrader's metadata (schema 3); ``grade_id`` is also the cell id."""
    cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(source)
    cell.id = grade_id
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    cell.metadata = {"nbgrader": meta}
    return cell


def _readonly(kind: str, source: str, grade_id: str) -> nbformat.NotebookNode:
    return _cell(kind, source, grade_id, locked=True)


def _answer(ex: Written, note: str | None) -> nbformat.NotebookNode:
    """The manually graded answer cell: in the source, the answer key (removed on release)."""
    key = [f"**Answer key ({ex.label}; removed from the students' version).**", "",
           ex.solution or "(The book gives no solution: grade by the statement.)"]
    if note:
        key += ["", f"**Grading note (instructor's guide).** {note}"]
    return _cell("markdown", "\n".join(key), ex.label, solution=True, grade=True, points=WRITTEN_POINTS)


def _answer_prompt(kind: str) -> str:
    if "coding" in kind or "check" in kind:
        return ("Write your answer in the cell below (double-click it). For the coding part, add code "
                "cells below it: they run when the assignment is graded, so keep them quick (the "
                "chapter's objects are not defined here: import what you need from `hopfield_lab`, "
                "or work in the chapter's notebook and paste your code, numbers and conclusions).")
    return ("Write your answer in the cell below (double-click it); Markdown and LaTeX (`$...$`) "
            "work there.")


# --------------------------------------------------------------------------------------------
# reading the chapters and the guide
# --------------------------------------------------------------------------------------------
class _Collector(cx.Converter):
    """A Colab converter that takes the exercise and solution directives aside, unconverted."""

    def __init__(self, *args):
        super().__init__(*args)
        self.collect = True
        self.found: list[tuple[str, str, dict, list[str]]] = []

    def _directive(self, name, arg, options, body):
        if self.collect and name in ("exercise", "solution"):
            self.found.append((name, arg, options, body))
            return []
        return super()._directive(name, arg, options, body)

    def markdown(self, lines: list[str]) -> str:
        text = cx.expand_macros("\n".join(lines).strip("\n"), self.book.macros)
        bad = cx.myst_leftovers(text)
        if bad:
            raise cx.ExportError(f"{self.page}: MyST left after conversion: {bad[:3]}")
        return text


def written_exercises(book: cx.Book, page: str, chapter: int | None) -> list[Written]:
    """The chapter's ``:::{exercise}`` blocks with their ``:::{solution}``, in order."""
    conv = _Collector(book, page, chapter, False)
    for text in cx.markdown_of(page):
        conv.convert(text)
    found, conv.collect = conv.found, False
    solutions = {arg.strip(): body for name, arg, _, body in found if name == "solution"}
    out = []
    for name, arg, options, body in found:
        if name != "exercise":
            continue
        label = options.get("label")
        if not label:
            raise cx.ExportError(f"{page}: an exercise without :label: ({arg or body[:1]})")
        m = re.search(r"\(([^()]*)\)\s*$", arg) or re.match(r"\s*\*\(([^)]*?)\.?\)\*", "\n".join(body))
        kind = m.group(1).lower().rstrip(".") if m else "written"
        statement = conv.markdown(super(_Collector, conv)._directive("exercise", arg, options, body))
        solution = conv.markdown(conv._blocks(solutions[label])) if label in solutions else ""
        out.append(Written(label, kind, statement, solution))
    return out


def problem_sets(book: cx.Book) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """The guide's problem sets: (number, title, [(label, kind, grading note)])."""
    text = (ROOT / f"{GUIDE}.md").read_text()
    conv = cx.Converter(book, GUIDE, None, False)
    sets = []
    heads = list(_PS_HEADING.finditer(text))
    for k, h in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        body = re.split(r"^##", text[h.end():end], maxsplit=1, flags=re.M)[0]
        items, current = [], None
        for line in body.splitlines():
            m = _PS_ITEM.match(line)
            if m:
                current = [m.group(1), m.group(2), m.group(3)]
                items.append(current)
            elif current and line.startswith("  ") and line.strip():
                current[2] += " " + line.strip()
            else:
                current = None
        sets.append((h.group(1), h.group(2).strip(),
                     [(lab, kind, cx.expand_macros(conv.inline(note), book.macros)) for lab, kind, note in items]))
    return sets


def grading_notes(book: cx.Book) -> dict[str, str]:
    return {lab: note for _, _, items in problem_sets(book) for lab, _, note in items}


def _task_text(book: cx.Book, page: str, chapter: int | None, cell) -> str:
    """The task of the auto-checked exercise: the Markdown cell before its code, from its start."""
    starts = list(_TASK_START.finditer(cell.source))
    if not starts:
        raise cx.ExportError(f"{page}: the Markdown cell before the exercise has no '**Your turn.**' "
                             "paragraph or ':::{admonition} Coding exercise' box; start its task with one")
    conv = cx.Converter(book, page, chapter, False)
    return conv.convert(cell.source[starts[-1].start():])


# --------------------------------------------------------------------------------------------
# assignments
# --------------------------------------------------------------------------------------------
def _notebook(name: str, cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"},
                   "colab": {"provenance": [], "name": f"{name}.ipynb"}}
    return nb


def _header(title: str, url: str, auto: int, manual: int, what: str) -> str:
    total = auto + manual
    parts = [f"# {title}", "",
             f"{what} The chapter itself: [{url}]({url}).", "",
             f"**Points: {total}**" + (f" ({auto} graded automatically when you submit, {manual} by your "
                                       "instructor)." if auto else f" (all graded by your instructor)."),
             "",
             "Run the cells from the top (on Colab: *Runtime → Run all* once, then work in the cells "
             "that ask for your code or answer; the first cell installs the library there). Do not "
             "edit the other cells: they are restored when the assignment is graded. Save and submit "
             "the notebook under its original name."]
    return "\n".join(parts)


def chapter_assignment(book: cx.Book, page: str, chapter: int, notes: dict[str, str]) -> Assignment:
    src = cx.read_page(page)
    code = [c for c in src.cells if c.cell_type == "code"]
    if not code or not code[0].source.startswith(nbtool.SETUP_MARK):
        raise cx.ExportError(f"{page}: the first code cell is not the set-up cell (run tools/nb.py strip)")
    ex_idx = [i for i, c in enumerate(src.cells) if c.cell_type == "code" and cx.SOLUTION_BEGIN in c.source]
    if len(ex_idx) != 1:
        raise cx.ExportError(f"{page}: expected one code cell with {cx.SOLUTION_BEGIN}, found {len(ex_idx)}")
    i = ex_idx[0]
    exercise, task_md = src.cells[i], src.cells[i - 1]
    check = src.cells[i + 1] if i + 1 < len(src.cells) else None
    m = _CHECK_CELL.match(check.source) if check is not None and check.cell_type == "code" else None
    if task_md.cell_type != "markdown" or m is None:
        raise cx.ExportError(f"{page}: the exercise cell must follow its task (Markdown) and precede its "
                             "check cell 'demo.check_xxx(fn)'")
    check_fn, fn_name = m.groups()
    imports = code[1]
    tag = f"ch{chapter:02d}"
    name = f"{tag}_{Path(page).name.split('_', 1)[1]}"
    title = book.titles.get(page, page)
    written = written_exercises(book, page, chapter)

    cells = [_readonly("code", nbtool.setup_cell_source(), f"{tag}-setup"),
             _readonly("code", imports.source, f"{tag}-imports"),
             _readonly("markdown", "## The coding exercise (autograded)\n\n" + _task_text(book, page, chapter, task_md),
                       f"{tag}-task"),
             _cell("code", exercise.source, f"{tag}-{fn_name}", solution=True),
             _cell("code", "\n".join([
                 f"# Autograded ({CHECK_POINTS} points): the chapter's check. It prints its verdict; a wrong "
                 "answer raises an error whose message names the mistake.",
                 "from hopfield_lab.exercises import graded", "",
                 f"graded({check_fn}, {fn_name})"]), f"{tag}-{fn_name}-check", grade=True, locked=True,
                 points=CHECK_POINTS)]
    if written:
        cells.append(_readonly("markdown", "## Written exercises (graded by your instructor)\n\n"
                               f"Each is worth {WRITTEN_POINTS} points.", f"{tag}-written"))
    for ex in written:
        cells.append(_readonly("markdown", ex.statement + "\n\n" + _answer_prompt(ex.kind), f"{ex.label}-task"))
        cells.append(_answer(ex, notes.get(ex.label)))
    head = _readonly("markdown", "", f"{tag}-header")
    nb = _notebook(name, [head] + cells)
    a = Assignment(name, nb)
    head.source = _header(f"Assignment {chapter}: {title}", book.url(page), *a.points(),
                          f"The coding exercise and the written exercises of chapter {chapter}.")
    return a


def problem_set_assignment(book: cx.Book, number: str, title: str,
                           items: list[tuple[str, str, str]]) -> Assignment:
    by_label: dict[str, Written] = {}
    pages = []
    for lab, _, _ in items:
        where = book.labels.get(lab)
        if where is None or where.kind != "exercise":
            raise cx.ExportError(f"{GUIDE}: problem set {number} lists {lab!r}, which is no exercise")
        if where.page not in pages:
            pages.append(where.page)
            chap = dict(book.pages)[where.page]
            by_label.update({w.label: w for w in written_exercises(book, where.page, chap)})
    name = f"ps{number}"
    cells = [_readonly("code", nbtool.setup_cell_source(), f"{name}-setup")]
    for lab, kind, note in items:
        ex = by_label[lab]
        cells.append(_readonly("markdown", ex.statement + f"\n\n*({kind}, {WRITTEN_POINTS} points.)* "
                               + _answer_prompt(kind), f"{name}-{lab}-task"))
        answer = _answer(ex, note)
        answer.id = answer.metadata["nbgrader"]["grade_id"] = f"{name}-{lab}"
        cells.append(answer)
    head = _readonly("markdown", "", f"{name}-header")
    nb = _notebook(name, [head] + cells)
    a = Assignment(name, nb)
    chapters = ", ".join(f"[{book.titles[p]}]({book.url(p)})" for p in pages)
    head.source = _header(f"Problem set {number}: {title}", book.url(GUIDE), *a.points(),
                          f"The exercises of the instructor's guide's problem set {number}, from the "
                          f"chapters {chapters}; work in the chapters' notebooks and answer here.")
    return a


def assignments(book: cx.Book | None = None) -> list[Assignment]:
    """Every assignment of the course: the chapters in book order, then the problem sets."""
    book = book or cx.load_book()
    notes = grading_notes(book)
    out = [chapter_assignment(book, page, number, notes) for page, number in cx.chapters(book) if number]
    out += [problem_set_assignment(book, n, t, items) for n, t, items in problem_sets(book)]
    return out


def write_course(course: Path) -> list[Assignment]:
    """Write ``course/source/<name>/<name>.ipynb`` for every assignment and ``course/nbgrader_config.py``."""
    course = Path(course)
    made = assignments()
    for a in made:
        path = course / "source" / a.name / f"{a.name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(a.notebook)
        nbformat.write(a.notebook, path)
    stub = "\n".join(cx.STUDENT_STUB)
    (course / "nbgrader_config.py").write_text(CONFIG.format(course=COURSE_ID, stub=stub))
    return made


def guide_table(made: list[Assignment] | None = None, book: cx.Book | None = None) -> str:
    """The Markdown table of the assignments and their points, as the instructor's guide shows it."""
    book = book or cx.load_book()
    made = made if made is not None else assignments(book)
    chapter_label = {lab.page: name for name, lab in book.labels.items() if lab.kind == "chapter"}
    titles = {f"ps{n}": f"problem set {n}: {t}" for n, t, _ in problem_sets(book)}
    lines = ["| assignment | made from | autograded points | manually graded points |", "|---|---|---|---|"]
    for a in made:
        page = next((p for p, n in cx.chapters(book) if n and a.name.startswith(f"ch{n:02d}_")), None)
        source = f"{{numref}}`{{number}}. {{name}} <{chapter_label[page]}>`" if page else titles[a.name]
        auto, manual = a.points()
        lines.append(f"| `{a.name}` | {source} | {auto} | {manual} |")
    total = [sum(a.points()[k] for a in made) for k in (0, 1)]
    lines.append(f"| all {len(made)} | | {total[0]} | {total[1]} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    if "--guide-table" in argv:
        print(guide_table())
        return 0
    ap.add_argument("course", help="the course folder (nbgrader's root): source/ and nbgrader_config.py go there")
    ap.add_argument("--list", action="store_true", help="print each assignment with its points")
    args = ap.parse_args(argv)
    try:
        made = write_course(Path(args.course))
    except cx.ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.list:
        print(f"{'assignment':<26} {'autograded':>10} {'manual':>7}")
        for a in made:
            auto, manual = a.points()
            print(f"{a.name:<26} {auto:>10} {manual:>7}")
    print(f"wrote {len(made)} assignments to {Path(args.course) / 'source'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
