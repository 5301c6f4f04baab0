"""The command line: help texts, a tiny sweep that writes and then skips its JSONs, bench."""
import dataclasses
import json
import re
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
    table = capsys.readouterr().out.split("sweep finished")[1].splitlines()[2:]
    assert [line.split()[:4] for line in table if line.strip()] == [  # each run by its key, λ, n_iter, init
        ["paramixer_cifar_tiny_seed0", "-", "1", "random"], ["asymmixer_cifar_tiny_lam0_seed0", "0", "1", "random"],
        ["asymmixer_cifar_tiny_lam1e-1_seed0", "0.1", "1", "random"]]
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


# ---------------------------------------------------------------------------------------------
# --recipe paper
# ---------------------------------------------------------------------------------------------
def _torchvision_ok() -> bool:
    from hopfield_lab.recipes import require_torchvision

    try:
        require_torchvision()
        return True
    except ImportError:
        return False


def test_recipe_paper_help_and_dry_runs_need_no_torchvision(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--recipe", "paper", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--recipe {none,paper}" in out and "--workers" in out and "recipe's values" in out
    # options not given take the recipe's values; given ones win (lr rescaled with the batch)
    assert cli.main(["train", "--recipe", "paper", "--model", "asymmixer", "--lam", "0.01",
                     "--batch-size", "96", "--epochs", "30", "--workers", "3", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    from hopfield_lab.recipes import PAPER

    assert cfg["recipe"] == "paper" and cfg["model"] == "asymmixer_s16_224" and cfg["lam"] == 0.01
    assert cfg["epochs"] == 30 and cfg["batch_size"] == 96 and cfg["workers"] == 3
    assert cfg["lr"] == pytest.approx(5e-4 * 96 / 512) and cfg["warmup_epochs"] == pytest.approx(2.0)
    assert cfg["schedule"] == "cosine" and cfg["img_size"] == 224 and cfg["label_smoothing"] == 0.0
    assert cfg["model_overrides"]["embed_dim"] == PAPER.embed_dim and cfg["model_overrides"]["drop_path_rate"] == 0.1
    assert cli.main(["train", "--recipe", "paper", "--lr", "1e-3", "--no-flip", "--model-overrides",
                     "num_blocks=4", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["lr"] == 1e-3 and cfg["epochs"] == PAPER.epochs and cfg["warmup_epochs"] == PAPER.warmup_epochs
    assert cfg["model"] == "paramixer_s16_224" and cfg["model_overrides"]["num_blocks"] == 4
    assert cfg["model_overrides"]["embed_dim"] == PAPER.embed_dim
    # without a recipe nothing changes: TrainConfig's defaults
    assert cli.main(["train", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == TrainConfig().to_dict()
    with pytest.raises(SystemExit, match="crop_padding=0 and flip=True would be ignored"):
        cli.main(["train", "--recipe", "paper", "--flip", "--dry-run"])  # nothing is silently ignored
    with pytest.raises(SystemExit, match="names its family"):
        cli.main(["train", "--recipe", "paper", "--model", "paramixer_cifar_small", "--dry-run"])
    assert cli.main(["sweep", "--recipe", "paper", "--models", "paramixer", "asymmixer", "--lams", "0", "0.01",
                     "--epochs", "30", "--out-dir", "unused", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 runs" in out and "asymmixer_lam1e-2_seed0: asymmixer_s16_224, recipe paper, 30 epochs" in out


@pytest.mark.skipif(_torchvision_ok(), reason="torchvision imports here: the missing-torchvision error cannot be shown")
def test_recipe_paper_without_torchvision_says_what_to_install(tmp_path):
    for argv in (["train", "--recipe", "paper", "--dataset", "synthetic", "--out-dir", str(tmp_path / "t")],
                 ["sweep", "--recipe", "paper", "--models", "paramixer", "--dataset", "synthetic",
                  "--out-dir", str(tmp_path / "s")]):
        with pytest.raises(SystemExit, match="--recipe paper: .*torchvision.*pip install torchvision"):
            cli.main(argv)
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()  # refused before any work


def _small_transform(u8):
    """Torch-only stand-in for the recipe's torchvision transforms: random flip, scale to [-1, 1]."""
    import torch

    x = u8.float() / 127.5 - 1.0
    return x.flip(-1) if torch.rand(()) < 0.5 else x


def test_recipe_paper_trains_through_the_streaming_loaders_and_resume_checks_the_recipe(tmp_path, monkeypatch):
    from hopfield_lab import recipes
    from hopfield_lab import train as T

    calls = []

    def fake_transforms(recipe=recipes.PAPER):
        calls.append(recipe.img_size)
        return _small_transform, _small_transform

    monkeypatch.setattr(recipes, "require_torchvision", lambda: None)
    monkeypatch.setattr(recipes, "paper_transforms", fake_transforms)
    out = tmp_path / "paper"
    argv = ["train", "--recipe", "paper", "--model", "symmixer", "--dataset", "synthetic",
            "--dataset-options", "n=48", "n_test=16", "size=16", "num_classes=4", "--img-size", "16",
            "--model-overrides", "patch_size=4", "embed_dim=16", "num_blocks=2", "--epochs", "2",
            "--batch-size", "16", "--workers", "0", "--device", "cpu", "--no-progress",
            "--no-symmetry-metrics", "--out-dir", str(out)]
    assert cli.main([*argv, "--stop-after-epochs", "1"]) == 0
    assert cli.main(argv) == 0  # resumed
    r = json.loads((out / "result.json").read_text())
    assert calls == [16, 16] and r["recipe"] == "paper" and r["config"]["recipe"] == "paper"
    assert r["model"] == "symmixer_s16_224" and r["img_size"] == 16 and r["n_train"] == 48 and r["num_classes"] == 4
    assert r["config"]["workers"] == 0 and r["config"]["model_overrides"]["drop_path_rate"] == 0.1
    assert r["epochs_done"] == 2 and all(0 <= h["train_acc"] <= 1 for h in r["history"])  # soft targets counted
    ck = T.load_checkpoint(out / T.CHECKPOINT_NAME)["config"]
    with pytest.raises(ValueError, match="recipe: checkpoint 'paper' vs now 'none'"):
        T.train(dict(ck, recipe="none"))


def test_sweep_run_names_are_unique_and_give_back_lambda():
    import re

    from hopfield_lab.results import format_lam, run_name

    lams = [0.0, 1e-5, 1.5e-3, 2e-3, 1e-2, 1.2e-2, 0.1, 1.0, 5e-4, 1 / 3]
    plan = cli.sweep_plan(["asymmixer_cifar_small"], lams, [0])
    names = [p["name"] for p in plan]
    assert len(set(names)) == len(lams)
    for p in plan:
        assert float(re.search(r"_lam([^_]+)_seed", p["name"])[1]) == p["lam"]
        assert float(format_lam(p["lam"])) == p["lam"]
    # the committed hopfield_lab/results/cifar10 files keep their names
    assert [run_name("asymmixer_cifar_small", lam, 0) for lam in (0.0, 1e-5, 1e-2, 0.1)] == [
        "asymmixer_cifar_small_lam0_seed0", "asymmixer_cifar_small_lam1e-5_seed0",
        "asymmixer_cifar_small_lam1e-2_seed0", "asymmixer_cifar_small_lam1e-1_seed0"]
    assert names[5] == "asymmixer_cifar_small_lam1.2e-2_seed0" and format_lam(1.5e-3) == "1.5e-03"
    with pytest.raises(ValueError, match="more than once .*lam1e-2_seed0"):
        cli.sweep_plan(["asymmixer_cifar_small"], [1e-2, 0.01], [0])


def test_sweep_dry_run_refuses_repeated_runs(capsys):
    with pytest.raises(SystemExit, match="more than once"):
        cli.main(["sweep", "--models", "asymmixer_cifar_tiny", "--lams", "1e-2", "0.010", "--out-dir", "unused",
                  "--dry-run", *TINY])
    assert cli.main(["sweep", "--models", "asymmixer_cifar_tiny", "--lams", "1e-2", "1.2e-2", "--out-dir",
                     "unused", "--dry-run", *TINY]) == 0
    out = capsys.readouterr().out
    assert "asymmixer_cifar_tiny_lam1e-2_seed0:" in out and "asymmixer_cifar_tiny_lam1.2e-2_seed0:" in out


# ---------------------------------------------------------------------------------------------
# bad input: one line that says what to fix, no traceback (unless --debug)
# ---------------------------------------------------------------------------------------------
def _truncated_archive(tmp_path):
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (src / split / c).mkdir(parents=True)
            for i in range(20):
                buf = io.BytesIO()
                Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), np.uint8)).save(buf, "PNG")
                (src / split / c / f"{i}.png").write_bytes(buf.getvalue())
    full = tmp_path / "full.tar.gz"
    with tarfile.open(full, "w:gz") as t:
        t.add(src, arcname="src")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return cut


def _image_folder_with_a_non_image(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    root = tmp_path / "folder"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            buf = io.BytesIO()
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "PNG")
            (root / split / c / "0.png").write_bytes(buf.getvalue())
    (root / "train" / "b" / "notes.jpg").write_text("a text file with an image suffix")
    return root


BAD_INPUTS = {
    "truncated archive": (lambda p: ["train", "--dataset", str(_truncated_archive(p))], "truncated or damaged"),
    "non-image file": (lambda p: ["train", "--dataset", str(_image_folder_with_a_non_image(p))],
                       r"train/b/notes\.jpg is not an image"),
    "unknown data set": (lambda p: ["train", "--dataset", "imagenet22k"], "Unknown data set 'imagenet22k'"),
    "missing path": (lambda p: ["train", "--dataset", str(p / "no" / "data.tar.gz")], "No such file or folder: .*data.tar.gz"),
    "override without =": (lambda p: ["train", "--model-overrides", "depth"], "KEY=VALUE pairs, got 'depth'"),
    "unknown override": (lambda p: ["train", "--model-overrides", "depth=4"], "'depth' \\(did you mean num_blocks\\?\\)"),
    "fewer classes than labels": (lambda p: ["train", "--model-overrides", "num_classes=3"],
                                  "3 outputs but the data have 10 classes"),
    "zero classes": (lambda p: ["train", "--model-overrides", "num_classes=0"], "num_classes must be an integer >= 1"),
    "negative seed": (lambda p: ["train", "--seed", "-1"], r"seed must be an integer in \[0, 2\*\*32\)"),
    "unknown device": (lambda p: ["train", "--device", "tpu"], "unknown device 'tpu'"),
    "infinite lambda": (lambda p: ["train", "--model", "asymmixer_cifar_tiny", "--lam", "inf"], "lam must be a finite"),
    "bench without steps": (lambda p: ["bench", "--models", "paramixer_cifar_tiny", "--steps", "0"], "steps must be"),
    "bench without classes": (lambda p: ["bench", "--models", "paramixer_cifar_tiny", "--num-classes", "0"],
                              "num_classes must be"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_ends_in_one_line_that_names_the_problem(case, tmp_path):
    make_argv, match = BAD_INPUTS[case]
    argv = make_argv(tmp_path)
    if argv[0] == "train":
        argv += ["--model", "paramixer_cifar_tiny"] * ("--model" not in argv) + ["--device", "cpu"] * (
            "--device" not in argv) + (TINY if "--dataset" not in argv else TINY[6:])
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    msg = exc.value.code
    assert isinstance(msg, str) and msg.startswith("error: ") and "\n" not in msg, msg
    assert re.search(match, msg), msg
    assert "unexpected" not in msg  # a known kind of bad input, not a bug


def test_bad_input_from_the_shell_has_no_traceback_unless_debug(tmp_path):
    argv = [sys.executable, "-m", "hopfield_lab", "train", "--seed", "-1", "--dataset", "synthetic"]
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["error: Bad TrainConfig: seed must be an integer in [0, 2**32), got -1."]
    out = subprocess.run([*argv, "--debug"], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" in out.stderr and "ValueError" in out.stderr


def test_diverging_runs_are_one_line_and_a_sweep_records_them_and_goes_on(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"^error: training diverged at epoch \d \(loss (NaN|exploded)"):
        cli.main(["train", "--model", "paramixer_cifar_tiny", "--lr", "1e3", "--epochs", "3",
                  "--out-dir", str(tmp_path / "one"), *TINY[:-3], "--no-progress"])
    assert json.loads((tmp_path / "one" / "result.json").read_text())["status"] == "diverged"
    argv = ["sweep", "--models", "paramixer_cifar_tiny", "--seeds", "0", "1", "--lr", "1e3", "--epochs", "3",
            "--out-dir", str(tmp_path / "sweep"), *TINY[:-3], "--no-progress"]
    with pytest.raises(SystemExit, match="2 of 2 runs diverged"):
        cli.main(argv)
    assert "diverged at epoch" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "sweep").glob("*.json")) == ["paramixer_cifar_tiny_seed0.json",
                                                                          "paramixer_cifar_tiny_seed1.json"]
    with pytest.raises(SystemExit, match="2 of 2 runs diverged"):
        cli.main(argv)  # rerun: the diverged runs are known, not retrained
    assert capsys.readouterr().out.count("done before (diverged at epoch") == 2


# ---------------------------------------------------------------------------------------------
# issue 20: Ctrl-C, two sweeps over one folder, --lams without λ
# ---------------------------------------------------------------------------------------------
def test_ctrl_c_is_one_line_exit_130_naming_the_checkpoint(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "hopfield_lab", "train", "--model", "paramixer_cifar_tiny",
                             *TINY[:-3], "--epochs", "500", "--no-progress", "--device", "cpu", "--out-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell without job control starts background jobs with SIGINT ignored, and
                            # children inherit that: give the run Ctrl-C back, as a terminal would
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1, err
    assert re.fullmatch(r"interrupted: paramixer_cifar_tiny interrupted in epoch \d+; the last checkpoint "
                        rf"\(epoch \d+\) is {re.escape(str(out / 'checkpoint.pt'))}: rerun the same command to "
                        r"resume from it\.", lines[0]), lines[0]
    assert not (out / ".lock").exists()  # released on the way out


def test_ctrl_c_in_a_sweep_is_one_line_too(tmp_path, monkeypatch, capsys):
    from hopfield_lab import train as ht

    def interrupted(cfg, **kw):
        raise ht.TrainingInterrupted(f"{cfg.model} interrupted in epoch 3; the last checkpoint (epoch 2) is x: "
                                     "rerun the same command to resume from it.")

    monkeypatch.setattr(ht, "train", interrupted)
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--models", "paramixer_cifar_tiny", "--out-dir", str(tmp_path), *TINY])
    assert exc.value.code == 130
    assert capsys.readouterr().err.splitlines() == [
        "interrupted: paramixer_cifar_tiny interrupted in epoch 3; the last checkpoint (epoch 2) is x: rerun the "
        "same command to resume from it."]


def test_two_sweeps_over_one_folder_split_the_work(tmp_path, capsys):
    import signal

    from tests.test_train import _holder

    argv = ["sweep", "--models", "paramixer_cifar_tiny", "--seeds", "0", "1", "2", "--out-dir", str(tmp_path), *TINY]
    other = _holder(tmp_path / "checkpoints" / "paramixer_cifar_tiny_seed1")  # another sweep is training seed 1
    try:
        assert cli.main(argv) == 0
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    out = capsys.readouterr().out
    assert f"[2/3] paramixer_cifar_tiny_seed1: being trained by another process (PID {other.pid}), left to it" in out
    assert "1 run(s) are still being trained by another process (paramixer_cifar_tiny_seed1)" in out
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["paramixer_cifar_tiny_seed0.json",
                                                               "paramixer_cifar_tiny_seed2.json"]
    assert cli.main(argv) == 0  # the other process died: its run is picked up, the others are not redone
    out = capsys.readouterr().out
    assert out.count("done before") == 2 and "[2/3] paramixer_cifar_tiny_seed1\n" in out
    assert not (tmp_path / "checkpoints").exists()


def test_sweep_lams_are_refused_or_noted_for_models_without_lambda(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"error: --lams 0.1 would be ignored: none of the models "
                                         r"\(paramixer_cifar_tiny\) has a symmetry-breaking penalty"):
        cli.main(["sweep", "--models", "paramixer_cifar_tiny", "--lams", "0.1", "--out-dir", str(tmp_path),
                  "--dry-run", *TINY])
    assert cli.main(["sweep", "--models", "paramixer_cifar_tiny", "asymmixer_cifar_tiny", "--lams", "0.1",
                     "--out-dir", str(tmp_path), "--dry-run", *TINY]) == 0
    assert capsys.readouterr().out.count("note: --lams applies to the models with λ only; paramixer_cifar_tiny") == 1


def test_sweep_out_dir_expands_the_home_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--models", "paramixer_cifar_tiny", "--out-dir", "~/sw", *TINY]) == 0
    assert (tmp_path / "sw" / "paramixer_cifar_tiny_seed0.json").is_file() and not (tmp_path / "~").exists()
