"""The Colab-stack check's own logic (tools/colab_stack.py): the pinned list, and how an executed
notebook is judged. (The check itself runs from tools/test.sh: it needs its side environment.)"""
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_export  # noqa: E402
import colab_stack  # noqa: E402

STUB = colab_stack.STUB_MESSAGE_RE.search(colab_export.STUDENT_STUB[-1]).group(1)


def test_pinned_list_is_colabs():
    text = colab_stack.STACK.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", text, re.M))
    assert colab_stack.stack_python() == "3.13"
    assert re.search(r"read on \d{4}-\d{2}-\d{2}", text) and "Refresh:" in text
    for name, version in {"numpy": "2.1.3", "matplotlib": "3.10.0", "ipywidgets": "7.7.1",
                          "ipython": "7.34.0", "ipykernel": "6.17.1", "scikit-learn": "1.6.1"}.items():
        assert pins.get(name) == version, name
    assert not [n for n in pins if re.match(r"((torch|torchvision|torchaudio|triton|setuptools)$|nvidia-|cuda-)", n, re.I)]
    assert "bash tools/colab_stack.sh" in (ROOT / "tools" / "test.sh").read_text()
    assert ".colab-venv/" in (ROOT / ".gitignore").read_text()


def test_refresh_drops_what_cannot_be_installed(tmp_path):
    (tmp_path / "os-info-gpu.txt").write_text("Ubuntu 22.04.5 LTS\nPython 3.13.15\n")
    freeze = tmp_path / "pip-freeze.gpu.txt"
    freeze.write_text("# comment\nnumpy==2.1.3\ntorch==2.11.0+cu128\nnvidia-cudnn-cu12==9.19.0.56\n"
                      "google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz\nsetuptools==75.2.0\n"
                      "torchvision==0.26.0+cu128\ntqdm==4.67.3\n")
    text = colab_stack.refresh(freeze, "test source", "2026-01-02")
    pins = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert pins == ["numpy==2.1.3", "tqdm==4.67.3"]
    assert "# python: 3.13" in text and "read on 2026-01-02" in text
    assert "[torch==2.11.0+cu128]" in text and "google-colab" in text and "setuptools==75.2.0" in text


def _executed(cells, tmp_path, colab=True, file=None):
    """A notebook as the check leaves it: code cells with outputs, then the harness cell."""
    nb = nbformat.v4.new_notebook()
    for source, outputs, tags in cells:
        c = nbformat.v4.new_code_cell(source)
        c.outputs = [nbformat.from_dict(o) for o in outputs]
        c.metadata["tags"] = tags
        nb.cells.append(c)
    venv = tmp_path / "venv"
    info = {"file": file or str(venv / "lib/python3.13/site-packages/hopfield_lab/__init__.py"),
            "colab": colab, "quick": True, "cwd": str(tmp_path)}
    h = nbformat.v4.new_code_cell("harness")
    h.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{colab_stack.HARNESS} {json.dumps(info)}\n")]
    nb.cells.append(h)
    return nb, str(venv)


def _err(ename, evalue):
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


def _out(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


SETUP = ("# hopfield-lab: setup", [], [])
CHECK = "demo.check_hebbian(hebbian);"


@pytest.mark.parametrize("flavour, cells, errors, stubbed", [
    ("instructor", [SETUP, ("x = 1", [], []), (CHECK, [_out("✔ Hebbian weights: correct.\n")], ["nbval-check-output"])], 0, 0),
    ("instructor", [SETUP, ("f()", [_err("NotImplementedError", STUB)], [])], 1, 0),
    ("instructor", [SETUP, (CHECK, [_out("✘ Hebbian weights: not implemented yet. ...\n")], ["nbval-check-output"])], 1, 0),
    ("student", [SETUP, ("f()", [_err("NotImplementedError", STUB)], []),
                 (CHECK, [_out("✘ Hebbian weights: not implemented yet. Fill in ...\n")], ["nbval-check-output"])], 0, 1),
    ("student", [SETUP, ("f()", [_err("NotImplementedError", "something else")], [])], 1, 0),
    ("student", [SETUP, ("g()", [_err("NameError", "name 'W' is not defined")], [])], 1, 0),
    ("student", [SETUP, (CHECK, [_out("Traceback ...\nline 2\n")], ["nbval-check-output"])], 1, 0),
    ("student", [SETUP, (CHECK, [_out("✔ Hebbian weights: correct.\n")], ["nbval-check-output"])], 1, 0),
    ("instructor", [("# hopfield-lab: setup", [_out("Note: you may need to restart the kernel\n")], [])], 1, 0),
])
def test_judge(flavour, cells, errors, stubbed, tmp_path):
    nb, venv = _executed(cells, tmp_path)
    out = colab_stack.Outcome(flavour, "no_chapter")
    colab_stack.judge_cells(out, nb, STUB, venv, str(tmp_path))
    assert (len(out.errors), len(out.stubbed)) == (errors, stubbed), out.errors


def test_judge_sees_the_wrong_library_or_branch(tmp_path):
    nb, venv = _executed([SETUP], tmp_path, colab=False, file=str(ROOT / "hopfield_lab" / "__init__.py"))
    out = colab_stack.Outcome("instructor", "no_chapter")
    colab_stack.judge_cells(out, nb, STUB, venv, str(tmp_path))
    assert any("Colab branch" in e for e in out.errors) and any("installed wheel" in e for e in out.errors)


def test_checked_outputs_are_compared_with_the_book():
    nb = nbformat.read(ROOT / "book" / "01_hopfield.ipynb", as_version=4)
    assert colab_stack.checked_differences(nb, "01_hopfield") == []
    cell = next(c for c in nb.cells if c.cell_type == "code" and "nbval-check-output" in c.metadata.get("tags", [])
                and "check_" not in c.source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="chosen letters: HTWCAMVX\n")]
    found = colab_stack.checked_differences(nb, "01_hopfield")
    assert len(found) == 1 and "differs from the book's stored one" in found[0]
