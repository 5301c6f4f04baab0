"""Every code block inside an exercise solution runs (quick mode, after its chapter's cells), so a
wrong solution fails CI. Conceptual solutions without code are not executed; a block that must
not run is fenced as ```text."""
import os
import re
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from lint_book import FENCE  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
_OPEN = re.compile(r"^(\s*):{3,}\{solution\}\s*([\w-]*)")


def solution_code(nb) -> list[tuple[str, str]]:
    """(exercise label, python source) of every ```python block inside a :::{solution}."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines, label, i = cell.source.split("\n"), None, 0
        while i < len(lines):
            m = _OPEN.match(lines[i])
            if m:
                label = m.group(2)
            elif label and re.match(r"^\s*:{3,}\s*$", lines[i]):
                label = None
            elif label:
                f = FENCE.match(lines[i])
                if f and re.search(r"```+\s*(python|py|ipython3?)\s*$", lines[i]):
                    col = lines[i].index("`")
                    body, i = [], i + 1
                    while not re.match(r"^\s*```+\s*$", lines[i]):
                        body.append(lines[i][col:] if lines[i][:col].strip() == "" else lines[i])
                        i += 1
                    found.append((label, textwrap.dedent("\n".join(body))))
            i += 1
    return found


def test_solution_code_is_found():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        ":::{solution} ex-a\n:class: dropdown\n1. text\n2. ```python\n   x = 1\n   y = x + 1\n   ```\n:::\n"
        ":::{solution} ex-b\n```text\nnot run\n```\n:::\n```python\noutside = 1\n```")])
    assert solution_code(nb) == [("ex-a", "x = 1\ny = x + 1")]


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_solutions_run(path):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    blocks = solution_code(nb)
    if not blocks:
        pytest.skip(f"{path.name}: no code in its solutions")
    run = nbformat.v4.new_notebook(metadata=nb.metadata)
    run.cells = [c for c in nb.cells if c.cell_type == "code"]
    for label, code in blocks:
        cell = nbformat.v4.new_code_cell(code)
        cell.metadata["solution"] = label
        run.cells.append(cell)
    env = {"HOPFIELD_LAB_QUICK": "1", "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(run, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:
        failed = next((c.metadata.get("solution") for c in run.cells
                       if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        where = f"the solution of {failed}" if failed else "a chapter cell"
        pytest.fail(f"{path.name}: {where} failed:\n{str(err)[-2000:]}")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
