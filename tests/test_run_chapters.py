"""benchmarks/run_chapters.py: runs chapters in a fresh kernel, times them, keeps going after a
failure and exits non-zero, writing what finished."""
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import run_chapters  # noqa: E402


def _nb(path, code):
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), path)


def test_times_every_chapter_and_reports_failures(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _nb(book / "01_ok.ipynb", "import os\nassert os.environ['HOPFIELD_LAB_QUICK'] == '1'\nprint('fine')")
    _nb(book / "02_broken.ipynb", "raise ValueError('chapter two is broken')")
    _nb(book / "03_ok.ipynb", "x = 1")
    out = tmp_path / "out"
    rc = run_chapters.main(["--mode", "quick", "--book", str(book), "--out", str(out)])
    assert rc == 1
    (f,) = out.glob("chapter_times_*_quick.json")
    recs = json.loads(f.read_text())
    assert [r["chapter"] for r in recs] == ["01_ok", "02_broken", "03_ok"]
    assert [r["ok"] for r in recs] == [True, False, True]
    assert "chapter two is broken" in recs[1]["error"]
    assert all(r["seconds"] >= 0 and r["device"] == "cpu" for r in recs)
    assert run_chapters.main(["--mode", "quick", "--book", str(book), "--only", "03"]) == 0
