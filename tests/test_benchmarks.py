"""benchmarks/: the side-by-side throughput tool and the GPU suite (its --tiny CPU version end to end)."""
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import hopfield_lab as hl
from hopfield_lab import cli, results
from hopfield_lab.demos.symmetry_study import SEEDED_FOLDER as SEEDED
from hopfield_lab.demos.symmetry_study import study_plan
from hopfield_lab.mixer import Mlp
from hopfield_lab.symmetry import summarize, symmetry_report
from hopfield_lab.bench import benchmark
from hopfield_lab.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"impl", "model", "compile", "batch_size", "img_per_s", "device", "torch_version"}


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


bench_mixer = _load("bench_mixer")
gpu_suite = _load("gpu_suite")


# ------------------------------------------------------------------ bench_mixer
def test_plan_orders_variants_and_compiles_only_the_first_token_mixing_form():
    v = bench_mixer.plan(["paramixer", "symmixer"], official=True, compile_modes=["default"],
                         compile_official=["default"], token_mixings=["bmm", "transpose"], decompose=True)
    labels = [(x["family"], bench_mixer.variant_label(x)) for x in v]
    assert labels[:6] == [("paramixer", "official"), ("paramixer", "official[ours path]"),
                          ("paramixer", "official+compile:default"), ("paramixer", "ours[bmm]"),
                          ("paramixer", "ours[bmm]+compile:default"), ("paramixer", "ours[transpose]")]
    assert len(v) == 12 and [x["family"] for x in v[6:]] == ["symmixer"] * 6
    assert [x["impl"] for x in bench_mixer.plan(["paramixer"], official=False)] == ["ours"]
    bf16 = bench_mixer.plan(["paramixer"], official=False, cpu_bf16=True)
    assert [bench_mixer.variant_label(x) for x in bf16] == ["ours", "ours[bf16]"]
    assert len({bench_mixer.variant_key(x) for x in bf16}) == 2


def _rec(family, impl, path, mode, ips, tm=None):
    return {"family": family, "impl": impl, "path": path, "compile_mode": mode, "token_mixing": tm,
            "img_per_s": ips, "img_per_s_median": ips, "device": "cpu", "cpu": "Test CPU", "threads": 2,
            "torch_version": torch.__version__, "batch_size": 8, "model": f"{family}_cifar_tiny", "amp": None,
            "rounds": 1}


def test_ratios_and_table():
    recs = [_rec("paramixer", "official", "own", None, 100.0), _rec("paramixer", "official", "own", "default", 200.0),
            _rec("paramixer", "ours", "ours", None, 150.0), _rec("paramixer", "ours", "ours", "default", 300.0),
            _rec("symmixer", "ours", "ours", None, 50.0)]
    rows = bench_mixer.ratios(recs)
    assert rows[2]["vs_official_eager"] == 1.5 and rows[2]["vs_official_compiled"] is None
    assert rows[3]["vs_official_eager"] == 3.0 and rows[3]["vs_official_compiled"] == 1.5
    assert rows[4]["vs_official_eager"] is None  # no official record for that family
    text = bench_mixer.table(recs)
    assert "1.50x" in text and "3.00x" in text and "Test CPU" in text


def test_device_slug_and_records_file(tmp_path):
    cpu = [dict(_rec("paramixer", "ours", "ours", None, 1.0), cpu="Intel(R) Xeon(R) Processor")]
    assert bench_mixer.device_slug(cpu) == "cpu-intel-xeon-2t"
    assert bench_mixer.device_slug([dict(cpu[0], device="NVIDIA H200")]) == "nvidia-h200"
    f = bench_mixer.write_records(cpu, tmp_path / "t" / "x.json")
    bench_mixer.write_records(cpu, f, append=True)
    assert len(json.loads(f.read_text())) == 2
    bench_mixer.write_records(cpu, f)
    assert len(json.loads(f.read_text())) == 1


@pytest.mark.parametrize("isolate", ["none", "path"])
def test_measure_writes_the_required_fields(isolate):
    variants = bench_mixer.plan(["paramixer"], official=False)
    recs = bench_mixer.measure(variants, preset="cifar_tiny", device="cpu", batch=4, steps=1, warmup=1,
                               rounds=2, isolate=isolate, threads=1, log=lambda *a: None)
    assert len(recs) == 1
    r = recs[0]
    assert REQUIRED <= set(r)
    assert r["impl"] == "ours" and r["model"] == "paramixer_cifar_tiny" and r["compile"] is False
    assert r["device"] == "cpu" and r["threads"] == 1 and r["batch_size"] == 4 and r["img_per_s"] > 0
    assert len(r["img_per_s_rounds"]) == 2 and r["img_per_s"] == max(r["img_per_s_rounds"])
    assert r["optimizer"] == "AdamW (fused)" and r["isolation"] == isolate
    if isolate == "path":  # its own process: the trainer's allocator setting
        assert r["allocator"] == "tuned"


def test_cpu_bf16_variant_switches_autocast_for_that_variant_only(monkeypatch):
    from hopfield_lab import perf

    monkeypatch.delenv(perf.CPU_BF16_ENV, raising=False)
    variants = bench_mixer.plan(["paramixer"], official=False, cpu_bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no bf16 units" on CPUs without them
        recs = bench_mixer.measure(variants, preset="cifar_tiny", device="cpu", batch=4, steps=1, warmup=1,
                                   rounds=1, isolate="none", log=lambda *a: None)
    assert recs[0]["amp"] is None
    assert recs[1]["amp"] == ("bf16" if perf.cpu_bf16_supported() else None) and recs[1]["cpu_bf16"]
    assert perf.CPU_BF16_ENV not in os.environ


def test_official_model_needs_a_checkout():
    with pytest.raises(ValueError, match="--official"):
        bench_mixer.build("official", "paramixer", "cifar_tiny", official=None)


def test_benchmark_optimizer_choice_and_compile_switch(monkeypatch):
    r = benchmark("paramixer_cifar_tiny", batch_size=4, steps=1, warmup=1, device="cpu", optimizer="torch-default")
    assert r["optimizer"] == "AdamW (torch default)" and r["compiled"] == "eager" and "page_faults_per_step" in r
    with pytest.raises(ValueError, match="'trainer' or 'torch-default'"):
        benchmark("paramixer_cifar_tiny", batch_size=4, steps=1, warmup=1, device="cpu", optimizer="sgd")
    monkeypatch.setenv("HOPFIELD_LAB_COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    r = benchmark("paramixer_cifar_tiny", batch_size=4, steps=1, warmup=1, device="cpu", compile=True)
    assert r["compile"] is True and r["compiled"] == "compiled" and r["compile_mode"] == "default"


# ------------------------------------------------------------------ gpu_suite
def test_suite_plan_is_the_study_most_important_first():
    runs = gpu_suite.plan(gpu_suite.REAL, "data.tar.gz")
    names = [r.name for r in runs]
    assert names[:4] == ["vanillamixer_cifar_small_seed0", "paramixer_cifar_small_seed0",
                         "symmixer_cifar_small_seed0", "asymmixer_cifar_small_lam0_seed0"]
    assert names[4:9] == [f"asymmixer_cifar_small_lam{s}_seed0" for s in ("1e-5", "1e-4", "1e-3", "1e-2", "1e-1")]
    study = [r for r in runs if r.folder == gpu_suite.STUDY_DIR]
    assert len(study) == 17 + 27 and {r.fields["seed"] for r in study[:17]} == {0, 1, 2}
    assert {r.fields["seed"] for r in study} == {0, 1, 2, 3, 4}
    for r in study:  # the reference set-up at 30 epochs, the sweep's file names
        f = r.fields
        assert (f["epochs"], f["batch_size"], f["lr"], f["schedule"], f["weight_decay"], f["label_smoothing"]) == \
            (30, 512, 1e-3, "onecycle", 0.05, 0.1)
        over = f.get("model_overrides", {})
        assert r.name == cli.run_name(f["model"], f.get("lam"), f["seed"], over.get("n_iter"), over.get("init"))
    assert names[17:20] == ["vanillamixer_cifar_small_tied_seed0", "paramixer_cifar_small_tied_seed0",
                            "asymmixer_cifar_small_lam0_tied_seed0"]
    tied = [r for r in runs if "_tied_" in r.name]
    assert len(tied) == 9 and all(r.fields["model_overrides"] == {"init": "tied"} for r in tied)
    assert all(r.cost == 2.0 for r in runs if "_ni2_" in r.name)
    assert runs[-1].exclusive and runs[-1].fields["recipe"] == "paper"
    assert len(runs) == 17 + 27 + 1 and len(set(names)) == len(names)
    assert len(gpu_suite.plan(gpu_suite.REAL, "d", extras=False)) == 17


def test_suite_plan_holds_the_seeded_cpu_study_at_full_size():
    """The GPU suite's study is the plan of benchmarks/symmetry_study.sh at the cifar_small size:
    every run of the committed CPU study has its 30-epoch twin (same family, λ, n_iter, init, seed)."""
    names = {r.name for r in gpu_suite.plan(gpu_suite.REAL, "d") if r.folder == gpu_suite.STUDY_DIR}
    assert set(study_plan("cifar_small")) <= names, sorted(set(study_plan("cifar_small")) - names)
    committed = {p.stem for p in results.path(SEEDED).glob("*.json")}
    assert committed and committed <= set(study_plan("cifar_cpu"))


@pytest.mark.parametrize("index", [0, 3, 8, 17, 19, 23, 29])
def test_suite_runs_use_only_existing_cli_flags(index, tmp_path):
    runs = gpu_suite.plan(gpu_suite.TINY, "synthetic")
    run = runs[index]
    fields = dict(run.fields, out_dir=str(tmp_path), result_path=str(tmp_path / "r.json"), device="cpu",
                  progress=False, keep_checkpoint=False, compile=False,
                  dataset_options={"n": 256, "n_test": 64, "size": 16})
    args = cli.build_parser().parse_args(["train"] + gpu_suite.cli_args(fields))
    cfg = cli.config_from_args(args)
    if fields.get("recipe") == "paper":  # the recipe fills in the rest; the fields given win
        assert cfg.recipe == "paper" and cfg.epochs == fields["epochs"] and cfg.train_subset == fields["train_subset"]
        assert cfg.model == "paramixer_s16_224" and cfg.model_overrides["embed_dim"] == 32
    else:
        assert cfg == TrainConfig(**fields)


def test_suite_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        gpu_suite.main(["synthetic", "out"])  # synthetic data is for --tiny only
    assert "--tiny only" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_suite.main([str(ROOT / "README.md"), "out"])
        assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_suite_end_to_end(tmp_path):
    """``bash benchmarks/gpu_suite.sh --tiny synthetic OUT``: every phase on CPU, every file written."""
    out = tmp_path / "suite"
    env = dict(os.environ, PYTHON=sys.executable, HOPFIELD_LAB_GIT_COMMIT="testcommit")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--tiny", "synthetic", str(out),
                           "--bundle", str(tmp_path / "bundle.tgz")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "GPU suite summary" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    status = {r["name"]: r["status"] for r in summary["runs"]}
    assert sum(s == "done" for s in status.values()) == len(status) - 1 == 29, status
    assert status["paper224_paramixer_timing"] in ("done", "skipped")
    env_rec = json.loads((out / "environment.json").read_text())
    assert env_rec["git_commit"] == "testcommit" and env_rec["tiny"] is True
    # throughput records: the required fields, ours eager and compiled (official too when its code is there)
    (tp,) = [p for p in (out / "throughput").glob("cpu-*.json")]
    recs = json.loads(tp.read_text())
    assert all(REQUIRED <= set(r) for r in recs)
    assert {(r["impl"], r["compile"]) for r in recs} >= {("ours", False), ("ours", True)}
    assert all(r["compiled"] == "compiled" for r in recs if r["compile"])
    assert json.loads((out / "throughput" / "host_syncs.json").read_text())["note"].startswith("not applicable")
    # the study: one JSON per run, written by the trainer, seeds give a spread
    res = json.loads((out / gpu_suite.STUDY_DIR / "asymmixer_cifar_tiny_lam1e-2_seed0.json").read_text())
    assert res["finished"] and res["lam"] == 1e-2 and res["epochs"] == 2 and res["git_commit"] == "testcommit"
    para = summary["study"]["paramixer"]
    assert para["n"] == 3 and para["sd"] is not None and para["ci95"][0] < para["mean"] < para["ci95"][1]
    assert summary["study"]["asymmixer lam=0.1"]["n"] == 1 and summary["study"]["asymmixer lam=0.1"]["ci95"] is None
    assert summary["study"]["paramixer n_iter=2"]["n"] == 2
    assert (out / gpu_suite.STUDY_DIR / "symmixer_cifar_tiny_ni2_seed0.json").is_file()
    # the free models started from tied weights (the model option init="tied"): the run says so
    tied = json.loads((out / gpu_suite.STUDY_DIR / "paramixer_cifar_tiny_tied_seed0.json").read_text())
    assert tied["init"] == "tied" and tied["config"]["model_overrides"] == {"init": "tied"}
    assert summary["study"]["paramixer init=tied"]["n"] == 2
    assert set(summary["tied_start"]) == {"vanillamixer", "paramixer", "asymmixer"}
    assert all(-1 <= c <= 1 for v in summary["tied_start"].values() for c in v["cosine_per_epoch"])
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    import tarfile
    with tarfile.open(tmp_path / "bundle.tgz") as tar:
        names = tar.getnames()
    assert "suite/summary.json" in names and not any("/.cache/" in n for n in names)
