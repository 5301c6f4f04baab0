"""The command line: help texts, a tiny sweep that writes and then skips its JSONs, bench."""
import dataclasses
import json
import subprocess
import sys

import pytest

from hopfield_lab import cli
from hopfield_lab import data as hd
from hopfield_lab.train import TrainConfig

TINY = ["--dataset", "synthetic", "--dataset-options", "n=128", "n_test=64", "size=16",
        "--batch-size", "64", "--epochs", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv(hd.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.mark.parametrize("command", ["train", "sweep", "bench"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    if command != "bench":
        own = {"model", "lam", "seed", "out_dir", "result_path", "stop_after_epochs", "keep_checkpoint"}
        for f in dataclasses.fields(TrainConfig):
            if command == "train" or f.name not in own:
                assert "--" + f.name.replace("_", "-") in out, f.name
    for flag in {"sweep": ["--models", "--lams", "--seeds", "--out-dir"],
                 "bench": ["--models", "--compile", "--warmup", "--steps"], "train": ["--model"]}[command]:
        assert flag in out
    # every option line carries a help text (argparse prints the text after the flag)
    assert "show this help message" in out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "hopfield_lab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "sweep" in out.stdout


def test_unknown_model_lists_valid_names():
    with pytest.raises(SystemExit, match="Valid names:.*paramixer_cifar_small"):
        cli.main(["train", "--model", "resnet18", *TINY])


def test_sweep_plan_applies_lambda_to_asym_models_only():
    plan = cli.sweep_plan(["symmixer_cifar_small", "asymmixer_cifar_small"], [0.0, 1e-2], [0, 1])
    names = [p["name"] for p in plan]
    assert names == ["symmixer_cifar_small_seed0", "symmixer_cifar_small_seed1",
                     "asymmixer_cifar_small_lam0_seed0", "asymmixer_cifar_small_lam0_seed1",
                     "asymmixer_cifar_small_lam1e-2_seed0", "asymmixer_cifar_small_lam1e-2_seed1"]


def test_tiny_sweep_writes_json_and_resumes_by_skipping(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--models", "paramixer_cifar_tiny", "asymmixer_cifar_tiny", "--lams", "0", "0.1",
            "--seeds", "0", "--out-dir", str(out), *TINY]
    assert cli.main(argv) == 0
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["asymmixer_cifar_tiny_lam0_seed0.json", "asymmixer_cifar_tiny_lam1e-1_seed0.json",
                     "paramixer_cifar_tiny_seed0.json"]
    for name in files:
        r = json.loads((out / name).read_text())
        for key in ("model", "lam", "dataset", "epochs", "test_acc", "history", "wall_time_s", "img_per_s",
                    "device", "torch_version", "git_commit", "config", "symmetry"):
            assert key in r, (name, key)
        assert r["dataset"] == "synthetic" and r["epochs"] == 1 and len(r["history"]) == 1
    assert json.loads((out / files[1]).read_text())["lam"] == 0.1
    assert not (out / "checkpoints").exists()  # finished runs leave no checkpoint behind
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    capsys.readouterr()
    assert cli.main(argv) == 0  # rerun: everything is skipped
    assert "skipped" in capsys.readouterr().out
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    # the same folder with other settings is refused instead of mixing results
    with pytest.raises(SystemExit, match="other settings"):
        cli.main([*argv[:-1], "--lr", "0.5", "--no-progress"])


def test_bench_reports_images_per_second(tmp_path, capsys):
    target = tmp_path / "bench.json"
    assert cli.main(["bench", "--models", "paramixer_cifar_tiny", "--batch-size", "8", "--steps", "2",
                     "--warmup", "1", "--img-size", "16", "--device", "cpu", "--json", str(target)]) == 0
    rows = json.loads(target.read_text())
    assert rows[0]["img_per_s"] > 0 and rows[0]["compile"] is False and rows[0]["device"] == "cpu"
    assert "img/s" in capsys.readouterr().out
