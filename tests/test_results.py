"""hopfield_lab.results: the typed, versioned record of a training run (its upgrade path and λ's
spelling), and the committed results that ship with the package, written atomically with their
provenance; benchmarks/full_size.py runs every study in a tiny size."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hopfield_lab import results, runtime
from hopfield_lab.results import SCHEMA_VERSION, RunResult, format_lam, load_result, run_name

ROOT = Path(__file__).resolve().parents[1]


def test_save_and_load_round_trip(tmp_path):
    p = results.save("x/a.json", {"y": [1, 2]}, settings={"n": 3}, seconds=1.23, root=tmp_path)
    rec = json.loads(p.read_text())
    assert rec["data"] == {"y": [1, 2]} and rec["settings"] == {"n": 3} and rec["seconds"] == 1.2
    prov = rec["provenance"]
    assert prov["device"] == "cpu" and prov["torch_version"] and prov["cpu_threads"] >= 1
    assert set(prov) == set(runtime.provenance())  # the one provenance function
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



def _result(model, acc, **kw):
    hist = [{"epoch": 1, "train_loss": 1.0, "train_acc": acc, "test_acc": acc, "test_loss": 1.0}]
    return RunResult(model=model, lam=None, dataset="synthetic", epochs=1, epochs_done=1, seed=0, test_acc=acc,
                     history=hist, config={"model": model}, **kw).to_dict()


def test_result_records_are_checked_and_round_trip(tmp_path):
    good = _result("paramixer_cifar_small", 0.5)
    assert RunResult.from_dict(json.loads(json.dumps(good))).to_dict() == good
    with pytest.raises(TypeError, match="test_accuracy"):
        RunResult(**{**RunResult.from_dict(good).__dict__, "test_accuracy": 0.5})   # a renamed field fails
    with pytest.raises(ValueError, match="missing \\['history'\\]"):
        RunResult.from_dict({k: v for k, v in good.items() if k != "history"})
    with pytest.raises(ValueError, match="newer than this hopfield_lab"):
        RunResult.from_dict({**good, "schema_version": 99})
    with pytest.raises(ValueError, match="diverged run carries"):
        RunResult.from_dict({**good, "status": "diverged"})
    with pytest.raises(ValueError, match="finished run has a test accuracy"):
        RunResult.from_dict({**good, "test_acc": None})
    old = {k: v for k, v in good.items() if k not in ("schema_version", "status", "diverged", "recipe")}
    stopped = RunResult.from_dict({**old, "finished": False, "test_acc": None})      # version 1, unfinished
    assert stopped.status == "stopped" and stopped.recipe == "none" and not stopped.finished
    (tmp_path / "stopped.json").write_text(json.dumps(stopped.to_dict()))
    diverged = RunResult.from_dict({**good, "status": "diverged", "diverged": {"epoch": 2, "what": "loss NaN"},
                                    "test_acc": None})
    (tmp_path / "diverged.json").write_text(json.dumps(diverged.to_dict()))
    from hopfield_lab.demos import training as tr

    with pytest.warns(UserWarning, match="did not finish \\((stopped|diverged)\\)"):
        assert tr.load_results(tmp_path) == []


def test_load_result_names_the_file_at_fault(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        load_result(tmp_path / "bad.json")
    (tmp_path / "bench.json").write_text(json.dumps({"img_per_s": 5}))
    with pytest.raises(ValueError, match="bench.json: not a training result: missing"):
        load_result(tmp_path / "bench.json")
    (tmp_path / "ok.json").write_text(json.dumps(_result("symmixer_cifar_tiny", 0.7)))
    assert load_result(tmp_path / "ok.json").schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("lam, text, stem", [(0.0, "0", "lam0"), (1e-2, "1e-02", "lam1e-2"),
                                             (1.2e-2, "1.2e-02", "lam1.2e-2"), (1.0, "1e+00", "lam1e0"),
                                             (1 / 3, "3.333333333333333e-01", "lam3.333333333333333e-1")])
def test_lambda_is_spelled_so_that_it_reads_back(lam, text, stem):
    assert format_lam(lam) == text and float(text) == lam
    name = run_name("asymmixer_cifar_tiny", lam, 3)
    assert name == f"asymmixer_cifar_tiny_{stem}_seed3" and float(stem[3:]) == lam


# ------------------------------------------------------------------ summarize_runs: the one grouping
def _run(family, seed, acc, lam=None, n_iter=1, init="random", epochs=4):
    return RunResult(model=f"{family}_cifar_cpu", family=family, lam=lam, n_iter=n_iter, init=init, dataset="d",
                     epochs=epochs, epochs_done=epochs, seed=seed, config={}, history=[], test_acc=acc)


def test_summarize_runs_groups_by_configuration_with_t_intervals():
    runs = [_run("paramixer", s, a) for s, a in enumerate([0.40, 0.42, 0.44])]
    runs += [_run("paramixer", s, 0.30, init="tied") for s in (0, 1)]
    runs += [_run("asymmixer", 0, 0.35, lam=0.0), _run("asymmixer", 0, 0.33, lam=1e-2)]
    groups = results.summarize_runs(runs)
    assert [(g["family"], g["lam"], g["init"], g["n"]) for g in groups] == [
        ("paramixer", None, "random", 3), ("paramixer", None, "tied", 2), ("asymmixer", 0.0, "random", 1),
        ("asymmixer", 0.01, "random", 1)]
    para = groups[0]
    assert para["seeds"] == [0, 1, 2] and para["mean"] == pytest.approx(0.42) and para["sd"] == pytest.approx(0.02)
    half = 4.302652730 * 0.02 / 3 ** 0.5                           # t_{0.975, 2} · sd / sqrt(n)
    assert (para["interval"].low, para["interval"].high) == pytest.approx((0.42 - half, 0.42 + half))
    assert groups[2]["interval"] is None and groups[2]["sd"] != groups[2]["sd"]   # one seed: no spread (NaN)
    # dicts (the book's views) group the same way as RunResult objects
    assert [g["key"] for g in results.summarize_runs([r.to_dict() for r in runs])] == [g["key"] for g in groups]
    tied = results.find_group(groups, family="paramixer", init="tied")
    diff = results.compare_groups(para, tied)                      # paired over seeds 0, 1
    assert diff.n == 2 and diff.estimate == pytest.approx(((0.40 - 0.30) + (0.42 - 0.30)) / 2)
    assert results.compare_groups(para, tied, paired=False).n == (3, 2)
    assert "paramixer init=tied" in results.format_summary(groups)
    with pytest.raises(ValueError, match="0 groups match"):
        results.find_group(groups, family="symmixer")


def test_summarize_runs_refuses_mixed_studies_and_unfinished_runs():
    runs = [_run("symmixer", 0, 0.3, epochs=4), _run("symmixer", 0, 0.5, epochs=30)]
    with pytest.raises(ValueError, match="different studies"):
        results.summarize_runs(runs)
    assert [g["n"] for g in results.summarize_runs(runs, by=("epochs", "family"))] == [1, 1]
    stopped = RunResult(model="symmixer_cifar_cpu", family="symmixer", lam=None, dataset="d", epochs=4,
                        epochs_done=1, seed=0, config={}, history=[], status="stopped")
    with pytest.raises(ValueError, match="did it finish"):
        results.summarize_runs([stopped])
