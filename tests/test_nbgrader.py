"""The course loop, end to end, with a real nbgrader and its own database in a temporary folder.

tools/nbgrader_export.py writes the course -> ``nbgrader generate_assignment`` -> three simulated
students submit every chapter: ``reference`` (the reference solutions, and the answer key in the
written answers), ``mistake`` (the same, except each chapter's coding exercise makes the typical
mistake named below, one its check knows) and ``blank`` (the released notebooks untouched) ->
``nbgrader autograde`` -> the instructor grades the written answers by hand (here: the gradebook
gives full marks to every answer that needs a manual grade) -> ``nbgrader generate_feedback`` ->
``nbgrader export`` (the grade table, CSV). Executing the submissions takes a minute or two on
two cores: each assignment holds only the set-up, the imports and its exercise.
"""
from __future__ import annotations

import csv
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbgrader_export as nx  # noqa: E402

# one typical mistake per chapter: the body of the exercise's function, and the words of the
# check's verdict that name it (the same mistakes tests/test_demos_*.py feed the checks)
MISTAKES = {
    "ch01_hopfield": ("return patterns.T @ patterns / patterns.shape[1]", "the diagonal"),
    "ch02_dense_memory": ("return torch.softmax(xi @ X.T, dim=-1) @ X", "β is missing"),
    "ch03_lagrangians": ("return x.shape[-1] * gamma * torch.sqrt(torch.var(x, dim=-1) + eps) + (delta * x).sum(-1)",
                         "unbiased variance"),
    "ch04_ham": ("g = {n: lags[n].activation(x) for n, x in xs.items()}\n"
                 "layers = sum((xs[n] * g[n]).sum(-1) - lags[n](xs[n]) for n in xs)\n"
                 "return layers - (g['h1'] * (g['v'] @ W1.T)).sum(-1)", "through W2 is missing"),
    "ch05_energy_metaformer": (
        "g_v = (x_v - x_v.mean(-1, keepdim=True)) / torch.sqrt(x_v.var(-1, keepdim=True) + eps)\n"
        "return x_s - g_v @ xi_s.T, x_v - torch.relu(x_s) @ xi_s - torch.relu(x_c) @ xi_c, x_c - g_v @ xi_c.T",
        "biased variance"),
    "ch06_paramixer": ("c = X - X.mean(dim=(-2, -1), keepdim=True)\n"
                       "G = c / torch.sqrt(c.pow(2).mean(dim=(-2, -1), keepdim=True) + 1e-6)\n"
                       "gelu = torch.nn.functional.gelu\n"
                       "return A.T @ gelu(A @ G) + gelu(G @ B.T) @ B", "the leak, − X"),
    "ch07_symmetry_breaking": ("G = torch.nn.functional.layer_norm(X, X.shape[-2:], eps=eps)\n"
                               "gelu = torch.nn.functional.gelu\n"
                               "return A.T @ gelu(A @ G) + gelu(G @ B.T) @ B - X",
                               "breaking parts V_s, V_c are missing"),
    "ch08_training": ("inner = (W2 * W1.transpose(-1, -2)).sum(dim=(-2, -1))\n"
                      "return (inner / (torch.linalg.matrix_norm(W1) * torch.linalg.matrix_norm(W2))).abs()",
                      "keep the sign"),
}
STUDENTS = ("reference", "mistake", "blank")


# nbgrader runs the `alembic` executable of its environment when it opens a gradebook
BIN_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def nbgrader(course: Path, *args: str) -> str:
    env = dict(os.environ, HOPFIELD_LAB_QUICK="1", HOPFIELD_LAB_DEVICE="cpu", PATH=BIN_PATH,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout + run.stderr


def _solution_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def _with_mistake(source: str, body: str) -> str:
    """The reference code with its solution region replaced by ``body`` (indented like it)."""
    m = re.search(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", source, re.S | re.M)
    assert m, source
    indent = m.group(1)
    return source[:m.start()] + "\n".join(indent + line for line in body.split("\n")) + source[m.end():]


def submit(course: Path, student: str, name: str) -> None:
    """Write ``submitted/<student>/<name>/<name>.ipynb``: the released notebook, filled in."""
    release = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    key = _solution_cells(nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4))
    for grade_id, cell in _solution_cells(release).items():
        if student == "blank":
            continue
        cell.source = key[grade_id].source
        if student == "mistake" and cell.cell_type == "code":
            cell.source = _with_mistake(cell.source, MISTAKES[name][0])
    path = course / "submitted" / student / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(release, path)


@pytest.fixture(scope="module")
def gradebook():
    """Open a course's gradebook in this process (nbgrader's API, as formgrader uses it)."""
    from nbgrader.api import Gradebook

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", BIN_PATH)
        yield lambda course: Gradebook(f"sqlite:///{course / 'gradebook.db'}")


@pytest.fixture(scope="module")
def course(tmp_path_factory, gradebook):
    """The course after the whole loop; returns (folder, the assignments, the CSV rows)."""
    course = tmp_path_factory.mktemp("course")
    made = nx.write_course(course)
    nbgrader(course, "generate_assignment", "*", "--force")
    for a in made:
        for student in STUDENTS:
            submit(course, student, a.name)
    # the reference solution of chapter 1 from an editor that dropped the cells' metadata
    lost = course / "submitted" / "nometa" / "ch01_hopfield"
    lost.mkdir(parents=True)
    nb = nbformat.read(course / "submitted" / "reference" / "ch01_hopfield" / "ch01_hopfield.ipynb", as_version=4)
    for cell in nb.cells:
        cell.metadata = {}
    nbformat.write(nb, lost / "ch01_hopfield.ipynb")
    nbgrader(course, "autograde", "*")
    # the instructor grades the written answers (formgrader does this through the same gradebook)
    with gradebook(course) as gb:
        for a in made:
            for student in STUDENTS:
                for nb in gb.find_submission(a.name, student).notebooks:
                    for grade in nb.grades:
                        if grade.needs_manual_grade:
                            grade.manual_score = grade.max_score
        gb.db.commit()
    nbgrader(course, "generate_feedback", "*")
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return course, made, rows


def test_the_course_has_one_assignment_per_chapter_and_per_problem_set(course):
    _, made, _ = course
    names = [a.name for a in made]
    assert names == list(MISTAKES) + ["ps1", "ps2", "ps3"]
    points = {a.name: a.points() for a in made}
    assert all(points[n][0] == nx.CHECK_POINTS for n in MISTAKES)             # one autograded check
    assert all(points[n][0] == 0 and points[n][1] >= 4 * nx.WRITTEN_POINTS for n in ("ps1", "ps2", "ps3"))
    # every written exercise of the book is a manually graded answer of its chapter's assignment
    n_written = sum(len(re.findall(r"(?m)^:::\{exercise\}", "".join(c.source for c in
                    nbformat.read(p, as_version=4).cells if c.cell_type == "markdown")))
                    for p in sorted((ROOT / "book").glob("0*.ipynb")))
    assert sum(points[n][1] for n in MISTAKES) == n_written * nx.WRITTEN_POINTS


def test_released_notebooks_hold_no_solution_and_run_on_colab(course):
    folder, made, _ = course
    for a in made:
        text = (folder / "release" / a.name / f"{a.name}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "Answer key" not in text and "Grading note" not in text
        nb = nbformat.read(folder / "release" / a.name / f"{a.name}.ipynb", as_version=4)
        setup = [c for c in nb.cells if c.cell_type == "code"][0]
        assert "google.colab" in setup.source and "pip install" in setup.source   # Colab installs the library
        if a.name in MISTAKES:
            stubs = [c for c in nb.cells if c.metadata["nbgrader"].get("solution") and c.cell_type == "code"]
            assert len(stubs) == 1 and "raise NotImplementedError" in stubs[0].source


def test_grades_reference_full_marks_mistake_loses_the_check_blank_zero(course):
    _, made, rows = course
    table = {(r["assignment"], r["student_id"]): (float(r["score"]), float(r["max_score"])) for r in rows}
    assert len(table) == len(made) * (len(STUDENTS) + 1)          # + nometa, zero where it sent nothing
    assert table[("ch01_hopfield", "nometa")] == (0.0, sum(made[0].points()))   # lost metadata: no points
    for a in made:
        auto, manual = a.points()
        assert table[(a.name, "reference")] == (auto + manual, auto + manual)
        assert table[(a.name, "mistake")] == (manual, auto + manual)       # the check's points lost
        assert table[(a.name, "blank")] == (0.0, auto + manual)
    totals = {s: sum(table[(a.name, s)][0] for a in made) for s in STUDENTS}
    assert totals == {"reference": 510.0, "mistake": 430.0, "blank": 0.0}


def test_autograde_scores_only_the_checks_and_blank_answers_need_no_grading(course, gradebook):
    folder, made, _ = course
    with gradebook(folder) as gb:
        for a in made:
            auto, _ = a.points()
            for student in STUDENTS:
                sub = gb.find_submission(a.name, student)
                want = auto if student == "reference" else 0.0
                assert sub.code_score == want, (a.name, student)
                if student == "blank":      # unchanged answer cells: zero, without a manual grade
                    assert all(g.auto_score == 0 and g.manual_score is None
                               for nb in sub.notebooks for g in nb.grades)


def test_feedback_names_the_typical_mistake(course):
    folder, _, _ = course
    for name, (_, says) in MISTAKES.items():
        verdicts = {}
        for s in STUDENTS:
            page = html.unescape((folder / "feedback" / s / name / f"{name}.html").read_text())
            verdicts[s] = re.findall(r"[✔✘] [^<\n]*", page)      # the check's printed line(s)
        assert any(v.startswith("✘") and "not yet" in v and says in v for v in verdicts["mistake"]), (name, verdicts)
        assert verdicts["reference"] and all(v.startswith("✔") and v.endswith(": correct.")
                                             for v in verdicts["reference"]), (name, verdicts)
        assert any("not implemented yet" in v for v in verdicts["blank"]), (name, verdicts)


def test_guide_lists_the_assignments_with_their_points():
    guide = (ROOT / "book" / "instructors.md").read_text()
    assert nx.guide_table() in guide, (
        "book/instructors.md: the table of nbgrader assignments is stale: paste the output of "
        "`python tools/nbgrader_export.py --guide-table` over it")


def test_export_says_what_is_wrong_with_a_chapter_it_cannot_read(monkeypatch):
    book = nx.cx.load_book()
    page, number = nx.cx.chapters(book)[1]
    src = nx.cx.read_page(page)
    check = next(c for c in src.cells if c.cell_type == "code" and c.source.startswith("demo.check_"))
    check.source = "print('no check here')"
    orig = nx.cx.read_page
    monkeypatch.setattr(nx.cx, "read_page", lambda p: src if p == page else orig(p))
    with pytest.raises(nx.cx.ExportError, match="precede its check cell"):
        nx.chapter_assignment(book, page, number, {})
