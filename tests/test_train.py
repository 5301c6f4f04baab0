"""The training engine on tiny synthetic data (CPU, a few seconds each)."""
import json
import math
import os

import pytest
import torch

from hopfield_lab import checkpoint as ck
from hopfield_lab import data as hd
from hopfield_lab import train as ht
from hopfield_lab.mixer import Mixer, create_model
from hopfield_lab.results import SCHEMA_VERSION, RunResult
from hopfield_lab.train import TrainConfig, train


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv(hd.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(hd.DATA_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    hd._MEMO.clear()


def tiny(**kw) -> TrainConfig:
    """A 16-px, 2-block, C=64 Mixer on 256 synthetic images: ~0.2 s per epoch on one core."""
    base = dict(model="asymmixer_cifar_tiny", lam=1e-2, dataset="synthetic", epochs=3, batch_size=64,
                lr=3e-3, dataset_options={"n": 256, "n_test": 128, "size": 16}, progress=False,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_and_result_has_required_fields(tmp_path):
    res = train(tiny(epochs=4, out_dir=str(tmp_path / "run")))
    h = res.history
    assert len(h) == 4 and h[-1]["train_loss"] < h[0]["train_loss"] - 0.2
    assert res.test_acc > 0.3  # 10 classes: chance is 0.1
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    for key in ("model", "lam", "dataset", "epochs", "test_acc", "history", "wall_time_s", "img_per_s",
                "device", "cpu", "torch_version", "git_commit", "config", "symmetry", "params"):
        assert key in on_disk, key
    assert on_disk["model"] == "asymmixer_cifar_tiny" and on_disk["lam"] == 1e-2 and on_disk["device"] == "cpu"
    assert 0 <= on_disk["test_acc"] <= 1 and on_disk["test_acc"] == res.test_acc
    assert on_disk["config"]["epochs"] == 4 and on_disk["finished"] is True
    assert RunResult.from_dict(on_disk) == res and on_disk["schema_version"] == SCHEMA_VERSION
    for row in on_disk["history"]:
        assert {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time_s"} <= set(row)
    # the penalty logged is lam * sum ||V||^2 of the weights, which the penalty shrinks
    assert h[-1]["penalty"] < h[0]["penalty"]


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    full = train(tiny(out_dir=str(tmp_path / "a")))
    part = train(tiny(out_dir=str(tmp_path / "b"), stop_after_epochs=1))
    assert part.finished is False and part.status == "stopped" and part.epochs_done == 1
    assert not (tmp_path / "b" / "result.json").exists()  # a stopped run is not a result
    resumed = train(tiny(out_dir=str(tmp_path / "b")))
    assert resumed.finished is True
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "penalty")
    for ra, rb in zip(full.history, resumed.history):
        assert {k: ra[k] for k in keys} == {k: rb[k] for k in keys}  # exact on CPU
    sa = ht.load_checkpoint(tmp_path / "a" / ht.CHECKPOINT_NAME)["model"]
    sb = ht.load_checkpoint(tmp_path / "b" / ht.CHECKPOINT_NAME)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_deterministic_run_is_repeatable_and_restores_global_state():
    a = train(tiny(epochs=1, deterministic=True))
    b = train(tiny(epochs=1, deterministic=True))
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert not torch.are_deterministic_algorithms_enabled()


def test_resume_refuses_another_configuration(tmp_path):
    train(tiny(epochs=2, out_dir=str(tmp_path), stop_after_epochs=1))
    with pytest.raises(ValueError, match="lr"):
        train(tiny(epochs=2, out_dir=str(tmp_path), lr=1e-2))


class _AutogradPenaltyMixer(Mixer):
    """Same model without the closed-form gradient: train_step back-propagates symmetry_penalty()."""

    add_symmetry_penalty_grad_ = None


@pytest.mark.parametrize("path", ["closed_form", "autograd"])
def test_penalty_changes_only_V_gradients(path):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    lam = 0.37
    after = {}
    for l in (0.0, lam):
        torch.manual_seed(1)
        m = create_model("asymmixer_cifar_tiny", img_size=16, lam=l)
        if path == "autograd":
            m.__class__ = _AutogradPenaltyMixer
        before = {k: v.detach().clone() for k, v in m.named_parameters()}
        opt = torch.optim.SGD(m.parameters(), lr=1.0)  # p_new = p - grad
        ht.train_step(m, x, y, opt)
        after[l] = {k: v.detach() for k, v in m.named_parameters()}
    n_v = 0
    for k, p0 in before.items():
        diff = after[lam][k] - after[0.0][k]  # = -(grad with penalty - grad without)
        is_v = k.endswith("fc2.weight") and "blocks" in k  # AsymMlp: fc1 = A or B, fc2 = V
        if is_v:
            n_v += 1
            torch.testing.assert_close(diff, -2 * lam * p0, rtol=1e-4, atol=1e-6)
        else:
            assert torch.equal(diff, torch.zeros_like(diff)), k
    assert n_v == 4  # 2 blocks x (token, channel) branches


def test_step_loss_includes_exactly_the_models_penalty():
    torch.manual_seed(0)
    m = create_model("asymmixer_cifar_tiny", img_size=16, lam=0.25)
    with torch.no_grad():
        for V in m.breaking_weights():
            V.normal_()                                      # V = 0 at init would make the check empty
        expected = m.symmetry_penalty()
    out = ht.train_step(m, torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,)),
                        torch.optim.SGD(m.parameters(), lr=0.0))
    assert expected > 0 and torch.equal(out.penalty, expected)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))  # no penalty at all
    out = ht.train_step(plain, torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,)),
                        torch.optim.SGD(plain.parameters(), lr=0.0))
    assert out.penalty.item() == 0.0


def test_the_result_records_the_models_lam(tmp_path):
    # --lam is sugar for the model option: it reaches model.lam, and the result records model.lam
    cfg = tiny(epochs=1, lam=3e-2, symmetry_metrics=False)
    assert ht.build_model(cfg, 10, 3, 16).lam == 3e-2
    assert train(cfg).lam == 3e-2
    by_override = tiny(epochs=1, lam=None, model_overrides={"lam": 2e-2}, symmetry_metrics=False)
    assert ht.build_model(by_override, 10, 3, 16).lam == 2e-2 and train(by_override).lam == 2e-2
    assert train(tiny(epochs=1, lam=None, symmetry_metrics=False)).lam == 0.0       # the preset's λ
    assert train(tiny(epochs=1, model="symmixer_cifar_tiny", lam=0.0, symmetry_metrics=False)).lam is None
    with pytest.raises(ValueError, match="disagree"):
        tiny(lam=1e-2, model_overrides={"lam": 2e-2}).validate()


def test_failed_checkpoint_in_training_leaves_a_resumable_run(tmp_path, monkeypatch):
    cfg = tiny(epochs=2, out_dir=str(tmp_path), eval_every=2, symmetry_metrics=False)
    train(TrainConfig(**{**cfg.to_dict(), "stop_after_epochs": 1}))
    real = ck.atomic_save

    def fail(obj, path):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ck, "atomic_save", fail)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(ck, "atomic_save", real)
    assert ht.load_checkpoint(tmp_path / ht.CHECKPOINT_NAME)["epoch"] == 1
    assert train(cfg).epochs_done == 2


@pytest.mark.parametrize("bad,match", [
    (dict(epochs=0), "epochs"), (dict(schedule="step"), "schedule"), (dict(lr=-1.0), "lr"),
    (dict(label_smoothing=1.5), "label_smoothing"), (dict(model="paramixer_cifar_tiny", lam=0.1), "lam"),
    (dict(warmup_epochs=5), "warmup_epochs"), (dict(pad_mode="edge"), "pad_mode"),
    (dict(seed=-1), "seed"), (dict(seed=2 ** 32), "seed"), (dict(device="tpu"), "unknown device 'tpu'"),
    (dict(lam=math.nan), "lam must be a finite"), (dict(lam=math.inf), "lam must be a finite"),
    (dict(model_overrides={"depth": 4}), "did you mean num_blocks"),
    (dict(model_overrides={"num_classes": 0}), "num_classes must be an integer >= 1"),
])
def test_bad_configs_are_rejected_clearly(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny(**bad).validate()


def test_unknown_model_missing_data_and_oversized_batch(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        train(tiny(model="resnet50", lam=None))
    with pytest.raises(hd.DataUnavailableError, match="HOPFIELD_LAB_DATA"):
        train(tiny(dataset="cifar100", data_root=str(tmp_path), download=False, dataset_options={}))
    with pytest.raises(ValueError, match="batch"):
        train(tiny(batch_size=512))
    with pytest.raises(ValueError, match="Unknown TrainConfig"):
        TrainConfig.from_dict({"modle": "x"})


def _lr_trace(schedule: str) -> list[float]:
    """Learning rate at each of 40 steps (4 epochs x 10 steps, 1 warm-up epoch, peak 1.0)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = ht.make_scheduler(opt, tiny(schedule=schedule, epochs=4, warmup_epochs=1, lr=1.0), steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return lrs


def test_schedules():
    lrs = _lr_trace("cosine")
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01
    assert lrs[20] == pytest.approx(0.5 * (1 + math.cos(math.pi * 10 / 30)))  # = 0.75
    lrs = _lr_trace("onecycle")
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) in (9, 10) and lrs[-1] < 1e-3


def test_symmetry_metrics_recorded_per_epoch(tmp_path):
    pytest.importorskip("hopfield_lab.symmetry")
    res = train(tiny(epochs=2, model="symmixer_cifar_tiny", lam=None))
    assert [s["epoch"] for s in res.symmetry_history] == [1, 2]
    assert isinstance(res.symmetry, list) and res.symmetry
    json.dumps(res.to_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_training_on_cuda(tmp_path):
    res = train(tiny(epochs=2, device="cuda", amp=True, out_dir=str(tmp_path)))
    assert res.device != "cpu" and res.amp == "bf16"
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_train_step_takes_soft_targets_from_mixup_cutmix():
    from hopfield_lab.recipes import MixupCutmix, soft_target_cross_entropy

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    x, y = torch.randn(12, 3, 8, 8), torch.randint(0, 5, (12,))
    mix = MixupCutmix(5, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1)
    xm, t = mix(x, y)
    assert t.shape == (12, 5) and mix.last_mode == "mixup"
    with torch.no_grad():
        logits = model(xm)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step's outputs describe these logits
    out = ht.train_step(model, xm, t, opt)
    torch.testing.assert_close(out.loss, soft_target_cross_entropy(logits, t))  # CE with probability targets
    assert int(out.correct) == int((logits.argmax(-1) == t.argmax(-1)).sum())


def test_diverging_run_stops_keeps_the_last_good_checkpoint_and_says_so(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setitem(ht.EXPLODED_FACTOR, "first epoch", math.inf)  # let it run on to NaN
    monkeypatch.setitem(ht.EXPLODED_FACTOR, "later epochs", math.inf)
    with pytest.raises(ht.TrainingDiverged, match=r"training diverged at epoch 2 \(loss NaN\); the last good "
                                                  r"checkpoint \(epoch 1\) is kept") as exc:
        train(tiny(lr=1e3, out_dir=str(out)))          # symmetry metrics on: never computed on NaN weights
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["diverged"] == {"epoch": 2, "what": "loss NaN"}
    assert on_disk["finished"] is False and on_disk["epochs_done"] == 2 and on_disk["history"][-1]["train_loss"] is None
    assert exc.value.result.status == "diverged"
    saved = ht.load_checkpoint(out / ht.CHECKPOINT_NAME)
    assert saved["epoch"] == 1 and all(torch.isfinite(v).all() for v in saved["model"].values())


def test_unusable_out_dir_fails_before_any_training(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ht, "make_loaders", lambda *a: calls.append(a))  # no data is even loaded
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ValueError, match="out_dir .*taken is a file, not a folder"):
        train(tiny(out_dir=str(tmp_path / "taken")))
    with pytest.raises(ValueError, match="cannot write to out_dir .*taken/run"):
        train(tiny(out_dir=str(tmp_path / "taken" / "run")))
    with pytest.raises(ValueError, match="the folder of result_path .*taken is a file"):
        train(tiny(result_path=str(tmp_path / "taken" / "r.json")))
    assert calls == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_out_dir_fails_before_any_training(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot write to out_dir"):
            train(tiny(out_dir=str(ro)))
    finally:
        ro.chmod(0o755)


def test_temp_files_of_killed_writes_are_removed_on_the_next_start(tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "run"
    train(tiny(epochs=2, out_dir=str(out), stop_after_epochs=1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [out / f".checkpoint.pt.tmp{dead.stdout.strip()}", out / f".result.json.tmp{dead.stdout.strip()}"]
    for f in stale:
        f.write_bytes(b"half a file")
    alive = out / f".checkpoint.pt.tmp{os.getppid()}"          # a live process's write is left alone
    alive.write_bytes(b"in progress")
    capsys.readouterr()
    res = train(tiny(epochs=2, out_dir=str(out), progress=False))
    assert res.epochs_done == 2 and not any(f.exists() for f in stale) and alive.exists()
    assert "resumed asymmixer_cifar_tiny" in capsys.readouterr().out  # said even without a progress bar


def test_resume_mismatch_names_the_cli_flag_on_the_command_line(tmp_path):
    from hopfield_lab import cli

    argv = ["train", "--model", "paramixer_cifar_tiny", "--dataset", "synthetic", "--dataset-options", "n=128",
            "n_test=64", "size=16", "--batch-size", "64", "--epochs", "2", "--stop-after-epochs", "1",
            "--device", "cpu", "--no-progress", "--out-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv[:-2], "--lr", "0.01", "--out-dir", str(tmp_path)])
    assert "lr: checkpoint 0.001 vs now 0.01" in exc.value.code and "--no-resume" in exc.value.code
    assert "resume=False" not in exc.value.code
    with pytest.raises(ValueError, match="resume=False"):  # in Python, the keyword
        train(TrainConfig(**{**tiny(epochs=2, out_dir=str(tmp_path)).to_dict(), "model": "paramixer_cifar_tiny",
                             "lam": None, "lr": 0.01}))


@pytest.mark.parametrize("lr, epoch", [(0.3, 2), (1e3, 1)])
def test_a_finite_blow_up_is_divergence_not_success(tmp_path, lr, epoch):
    # lr 0.3: epoch 1's mean loss is 0.99 ln(10), epoch 2's 5.1 ln(10) (then it "recovers" to a
    # chance-level model that used to end "finished"); lr 1e3: 8e7 in epoch 1
    out = tmp_path / "run"
    with pytest.raises(ht.TrainingDiverged, match=rf"diverged at epoch {epoch} \(loss exploded: mean training loss "):
        train(tiny(lr=lr, epochs=4, out_dir=str(out)))
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["diverged"]["epoch"] == epoch
    assert on_disk["history"][-1]["train_loss"] > ht.loss_limit(10, epoch)
    if epoch > 1:  # the last good checkpoint stays
        assert ht.load_checkpoint(out / ht.CHECKPOINT_NAME)["epoch"] == epoch - 1


def test_committed_runs_never_trip_the_explosion_limit():
    from hopfield_lab import results

    runs = []
    for p in sorted(results.HOME.glob("cifar10*/*.json")):
        try:
            runs.append(results.load_result(p))
        except ValueError:  # not a run's result (e.g. the official code's reference numbers)
            pass
    # the limit is 3x (10x in epoch 1) chance; the committed runs stay below a third of it
    histories = [(r, row) for r in runs for row in r.history if row.get("train_loss") is not None]
    assert len(runs) >= 5 and histories
    for r, row in histories:
        assert row["train_loss"] <= ht.loss_limit(r.num_classes, row["epoch"]) / 3, (r.key, row["epoch"])


# ---------------------------------------------------------------------------------------------
# issue 20: resumes on other data, shared folders, damaged files, paths
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [192, 320], ids=["fewer images", "more images"])
def test_resume_on_changed_data_is_refused_naming_no_resume(tmp_path, n):
    from hopfield_lab import cli

    train(tiny(epochs=3, out_dir=str(tmp_path), stop_after_epochs=1))
    assert ht.load_checkpoint(tmp_path / ht.CHECKPOINT_NAME)["data"]["steps_per_epoch"] == 4
    changed = tiny(epochs=3, out_dir=str(tmp_path), dataset_options={"n": n, "n_test": 128, "size": 16})
    with pytest.raises(ht.ResumeMismatch, match=r"data fingerprint: checkpoint '[0-9a-f]{16}' vs now") as exc:
        train(changed)
    assert f"data steps_per_epoch: checkpoint 4 vs now {n // 64}" in str(exc.value)
    assert "--no-resume" in exc.value.cli_message
    res = train(changed.__class__(**{**changed.to_dict(), "resume": False}))  # the named way out works
    assert res.finished and res.n_train == n


def test_result_records_the_data_source_and_fingerprint(tmp_path):
    res = train(tiny(epochs=1, out_dir=str(tmp_path)))
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["data"] == res.data and res.data["source"].startswith("synthetic")
    assert res.data["fingerprint"] == ht.load_checkpoint(tmp_path / ht.CHECKPOINT_NAME)["data"]["fingerprint"]


def test_tilde_is_the_home_folder_and_a_result_path_that_is_a_folder_fails_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = tiny(epochs=1, out_dir="~/runs/a", result_path="~/res/a.json")
    assert cfg.out_dir == str(tmp_path / "runs" / "a") and cfg.result_path == str(tmp_path / "res" / "a.json")
    train(cfg)
    assert (tmp_path / "res" / "a.json").is_file() and not (tmp_path / "~").exists()
    calls = []
    monkeypatch.setattr(ht, "make_loaders", lambda *a: calls.append(a))
    (tmp_path / "res" / "dir.json").mkdir()
    with pytest.raises(ValueError, match=r"the result file .*dir.json is an existing folder: choose another "
                                         r"result_path"):
        train(tiny(result_path=str(tmp_path / "res" / "dir.json")))
    (tmp_path / "b" / "result.json").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"result.json is an existing folder"):
        train(tiny(out_dir=str(tmp_path / "b")))
    assert calls == []


def test_an_empty_test_loader_is_refused_before_training(tmp_path):
    data = hd.load_splits(tiny())
    tr = hd.DeviceLoader(data.x_train, data.y_train, 64, train=True)
    te = hd.DeviceLoader(data.x_test[:0], data.y_test[:0], 64)
    with pytest.raises(ValueError, match="test loader yields no batch, so the run could not be evaluated"):
        train(tiny(), loaders=(tr, te, {**data.meta(), "n_test": None}))
    with pytest.raises(ValueError, match="test split of 'synthetic' has no images"):
        train(tiny(dataset_options={"n": 128, "n_test": 0, "size": 16}))


def _holder(folder):
    """A live process holding the lock of ``folder`` (it prints 'locked' once it holds it)."""
    import subprocess
    import sys

    code = ("import sys, time; from hopfield_lab.checkpoint import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_live_run_owns_its_folder_and_a_killed_one_leaves_no_stuck_lock(tmp_path):
    import signal

    out = tmp_path / "run"
    holder = _holder(out)
    try:
        with pytest.raises(ck.FolderInUse, match=rf"run is in use by a live run \(PID {holder.pid} on .*\): wait "
                                                 r"for it to end, or choose another out_dir"):
            train(tiny(epochs=1, out_dir=str(out)))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ck.LOCK_NAME).is_file()  # left behind by the killed holder, yet not stuck:
    assert train(tiny(epochs=1, out_dir=str(out))).finished
    assert not (out / ck.LOCK_NAME).exists()
    with ck.RunLock(out) as lock, ck.RunLock(out):  # this process may take its own lock again
        assert lock.owner()["pid"] == os.getpid()


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "keys missing", "not a dict"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, damage):
    from hopfield_lab import cli

    train(tiny(epochs=2, out_dir=str(tmp_path), stop_after_epochs=1))
    path = tmp_path / ht.CHECKPOINT_NAME
    blob = path.read_bytes()
    if damage == "keys missing":
        saved = ht.load_checkpoint(path)
        del saved["optimizer"], saved["rng"]
        torch.save(saved, path)
    elif damage == "not a dict":
        torch.save([1, 2], path)
    else:
        path.write_bytes({"empty": b"", "truncated": blob[: len(blob) // 2], "garbage": bytes(range(256)) * 4}[damage])
    with pytest.raises(ck.CheckpointError) as exc:
        train(tiny(epochs=2, out_dir=str(tmp_path)))
    text = str(exc.value)
    assert "\n" not in text and str(path) in text and "--no-resume" in text and len(text) < 400
    assert {"empty": "is empty", "truncated": "damaged", "garbage": "damaged", "keys missing": "lacks optimizer, rng",
            "not a dict": "holds a list"}[damage] in text
    assert train(tiny(epochs=2, out_dir=str(tmp_path), resume=False)).finished  # the way out it names


def test_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch):
    def full(obj, fh, *a, **k):
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4480 vs 4376")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"could not write .*checkpoint.pt: the disk is full .* free space") as exc:
        train(tiny(epochs=1, out_dir=str(tmp_path)))
    assert "\n" not in str(exc.value) and not list(tmp_path.glob(".checkpoint.pt.tmp*"))
