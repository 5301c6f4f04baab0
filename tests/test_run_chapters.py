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
    assert all(0 <= r["kernel_cpu_seconds"] and r["load_start"] >= 0 and r["git_commit"] for r in recs)
    table = run_chapters.guide_table(f)
    assert "| {numref}`{number}. {name} <ch-broken>` |" in table and "(failed)" in table
    assert table.count("\n|") == 2 + 3 + 1  # header, rule, a row per chapter, the total
    assert run_chapters.main(["--mode", "quick", "--book", str(book), "--only", "03"]) == 0


def test_kernel_cpu_time_is_the_kernels_own(tmp_path):
    """A chapter that burns CPU in its kernel is charged for it; a sleeping one is not."""
    book = tmp_path / "book"
    book.mkdir()
    _nb(book / "01_busy.ipynb", "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass")
    _nb(book / "02_idle.ipynb", "import time\ntime.sleep(1.5)")
    assert run_chapters.main(["--mode", "quick", "--book", str(book), "--out", str(tmp_path)]) == 0
    (f,) = tmp_path.glob("chapter_times_*_quick.json")
    busy, idle = json.loads(f.read_text())
    assert busy["kernel_cpu_seconds"] >= 1.4 and busy["seconds"] >= 1.4
    assert idle["seconds"] >= 1.4 and idle["kernel_cpu_seconds"] < busy["kernel_cpu_seconds"] - 1.0
