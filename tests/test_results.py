"""hopfield_lab.results: committed result files ship with the package and are written atomically
with their provenance; benchmarks/full_size.py runs every study in a tiny size."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hopfield_lab import results

ROOT = Path(__file__).resolve().parents[1]


def test_save_and_load_round_trip(tmp_path):
    p = results.save("x/a.json", {"y": [1, 2]}, settings={"n": 3}, seconds=1.23, root=tmp_path)
    rec = json.loads(p.read_text())
    assert rec["data"] == {"y": [1, 2]} and rec["settings"] == {"n": 3} and rec["seconds"] == 1.2
    prov = rec["provenance"]
    assert prov["device"] == "cpu" and prov["torch_version"] and prov["cpu_threads"] >= 1
    assert not list(p.parent.glob(".*.tmp")), "no temporary file left"


def test_missing_result_says_how_to_make_it():
    with pytest.raises(results.MissingResultError, match="benchmarks/full_size.py"):
        results.load("full_size/no_such_study.json")


def test_full_size_script_tiny(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import full_size

    assert full_size.main(["--tiny", "--out", str(tmp_path)]) == 0
    written = sorted(p.stem for p in tmp_path.glob("*.json"))
    assert written == sorted(full_size.STUDIES)
    for p in tmp_path.glob("*.json"):
        assert json.loads(p.read_text())["settings"]["tiny"] is True
    assert full_size.main(["--tiny"]) == 2, "tiny runs must not overwrite committed results"


def test_every_study_has_a_committed_result_and_a_readme_row():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import full_size

    readme = results.path("full_size", "README.md").read_text()
    for name in full_size.STUDIES:
        rec = results.load(f"full_size/{name}.json")
        assert rec["settings"]["tiny"] is False, f"{name}: the committed result is a tiny run"
        assert f"`{name}`" in readme, f"{name}: no row in hopfield_lab/results/full_size/README.md"


@pytest.mark.slow
def test_results_ship_in_the_wheel(tmp_path):
    """The pip-installed library (no checkout, no network) finds its committed results."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(ROOT)], check=True)
    (wheel,) = wheel_dir.glob("hopfield_lab-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "hopfield_lab/results/full_size/README.md" in names
    committed = [p.relative_to(ROOT).as_posix() for p in results.HOME.rglob("*.json")]
    assert all(n in names for n in committed)
