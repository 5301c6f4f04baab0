"""hopfield_lab.demos.training (book chapter 8): reading result files, tables, figures, the widget, live runs."""
import json
import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hopfield_lab.demos import training as tr  # noqa: E402
from hopfield_lab import results  # noqa: E402
from hopfield_lab.results import RunResult  # noqa: E402

RESULTS = results.path("cifar10")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _fake_report(n_blocks, cos_tokens, cos_channels, v_ratio=None):
    rows = []
    for b in range(n_blocks):
        for branch, c in (("tokens", cos_tokens), ("channels", cos_channels)):
            row = {"block": b, "branch": branch, "mlp": "Mlp", "in_features": 4, "hidden_features": 8,
                   "norm_w1": 1.0, "norm_w2": 1.0, "cosine": c + 0.01 * b, "rel_distance": 0.5,
                   "norm_ratio": 1.0, "product_sym_share": 0.5, "product_psd_share": 0.5}
            if v_ratio is not None:
                row.update(norm_v=v_ratio, v_ratio=v_ratio)
            rows.append(row)
    return rows


def _fake_result(model, acc, lam=None, n_iter=1, epochs=3, device="FakeGPU 80GB", cos=(0.0, 0.0)):
    hist = [{"epoch": e + 1, "train_loss": 2.0 - 0.3 * e, "train_acc": acc * (e + 1) / epochs,
             "test_acc": acc * (e + 1) / epochs, "test_loss": 1.5 - 0.1 * e, "lr": 1e-3,
             "epoch_time_s": 1.0, "img_per_s": 1000.0, "time_s": e + 1.0} for e in range(epochs)]
    rep = _fake_report(2, *cos, v_ratio=None if lam is None else 0.1)
    return RunResult(
        model=model, lam=lam, n_iter=n_iter, dataset="cifar10", epochs=epochs, epochs_done=epochs, seed=0, test_acc=acc,
        best_test_acc=acc, params=1000, n_train=50000, n_test=10000, img_size=32, history=hist, symmetry=rep,
        symmetry_history=[{"epoch": e + 1, "report": rep} for e in range(epochs)], img_per_s=1234.0, device=device,
        world_size=1, amp="bf16", torch_version="9.9", finished_at="2026-01-02T03:04:05Z",
        config={"model": model, "lam": lam, "batch_size": 512, "lr": 1e-3, "schedule": "onecycle",
                "weight_decay": 0.05, "label_smoothing": 0.1, "crop_padding": 4, "pad_mode": "reflect",
                "flip": True, "compile": False, "model_overrides": {"n_iter": n_iter} if n_iter != 1 else {}},
    ).to_dict()


@pytest.fixture
def results_dir(tmp_path):
    runs = [
        _fake_result("symmixer_cifar_small", 0.60, cos=(1.0, 1.0)),
        _fake_result("asymmixer_cifar_small", 0.70, lam=0.0, cos=(0.7, 0.7)),
        _fake_result("asymmixer_cifar_small", 0.61, lam=1e-2, cos=(0.99, 0.98)),
        _fake_result("asymmixer_cifar_small", 0.66, lam=1e-4, cos=(0.9, 0.9)),
        _fake_result("vanillamixer_cifar_small", 0.72),
        _fake_result("paramixer_cifar_small", 0.74),
        _fake_result("paramixer_cifar_small", 0.75, n_iter=2),
    ]
    for i, r in enumerate(runs):
        (tmp_path / f"run{i}.json").write_text(json.dumps(r))
    (tmp_path / "bench.json").write_text(json.dumps({"img_per_s": 5}))   # not a training result
    (tmp_path / "README.md").write_text("# results")
    return tmp_path


def test_load_results_sorts_and_skips(results_dir, tmp_path_factory):
    with pytest.warns(UserWarning, match="not a training result"):
        rs = tr.load_results(results_dir)
    assert [r["label"] for r in rs] == ["vanilla (serial)", "ParaMixer", "ParaMixer, n_iter 2", "SymMixer",
                                        "AsymMixer λ=0", "AsymMixer λ=1e-04", "AsymMixer λ=1e-02"]
    assert tr.load_results(tmp_path_factory.mktemp("empty") / "missing") == []
    table = tr.format_table(tr.results_table(rs))
    assert "AsymMixer λ=1e-02" in table and "61.0%" in table and "1,234" in table
    info = tr.settings_summary(rs)
    assert "FakeGPU 80GB" in info["hardware"] and "torch 9.9" in info["hardware"]
    assert "50000 train / 10000 test" in info["data"] and "3 epochs" in info["training"]
    assert "reflect-pad-4 crop + flip" in info["training"] and "7 runs" in info["runs"]
    assert tr.settings_summary([])["runs"] == "no result files"


def test_lambda_curve_and_figures(results_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rs = tr.load_results(results_dir)
    lams, accs = tr.lambda_curve(rs)
    np.testing.assert_allclose(lams, [0.0, 1e-4, 1e-2])
    np.testing.assert_allclose(accs, [0.70, 0.66, 0.61])
    assert tr.reference_accuracies(rs) == pytest.approx({"vanillamixer": 0.72, "paramixer": 0.74, "symmixer": 0.60})
    fig = tr.plot_accuracy_vs_lambda(rs)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [70.0, 66.0, 61.0])
    assert {round(float(l.get_ydata()[0]), 6) for l in ax.lines[1:]} == {72.0, 74.0, 60.0}
    assert ax.get_xscale() == "symlog" and r"$\lambda$" in ax.get_xlabel() and ax.get_title()
    fig = tr.plot_learning_curves(rs)
    assert len(fig.axes[0].lines) == 7 and fig.axes[0].get_ylabel() == "test acc (%)"
    m = tr.symmetry_by_block(rs[3])  # SymMixer
    np.testing.assert_allclose(m["tokens"], [1.0, 1.01])
    np.testing.assert_allclose(m["channels"], [1.0, 1.01])
    fig = tr.plot_symmetry_blocks(rs)
    assert len(fig.axes[0].lines) == 7 and fig.axes[0].get_xlabel() == "block"
    fig = tr.plot_symmetry_history(rs)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [0.005] * 3)   # vanilla: mean of 0, 0.01
    with pytest.raises(ValueError, match="symmetry report"):
        tr.symmetry_by_block(dict(rs[0], symmetry=None))


def test_training_widget_callback_and_player(results_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rs = tr.load_results(results_dir)
    w = tr.make_widget(rs)
    assert w.last["label"] == "AsymMixer λ=0"
    np.testing.assert_allclose(w.last["tokens"], [0.7, 0.71])
    w.controls["lam"].value = 2                      # the third λ in increasing order
    assert w.last["label"] == "AsymMixer λ=1e-02"
    np.testing.assert_allclose(w.last["channels"], [0.98, 0.99])
    w.controls["metric"].value = "rel_distance"
    assert w.last["metric"] == "rel_distance" and np.allclose(w.last["tokens"], 0.5)
    html, labels = tr.lambda_player(rs)
    assert labels == ["AsymMixer λ=0", "AsymMixer λ=1e-04", "AsymMixer λ=1e-02"]
    assert html.data.count("data:image/png") >= 3
    with pytest.raises(ValueError, match="no AsymMixer"):
        tr.make_widget([r for r in rs if r["family"] != "asymmixer"])


def test_live_config_and_a_tiny_live_run():
    cfg = tr.live_config("symmixer", quick=True, n_iter=2)
    assert cfg.model == "symmixer_cifar_tiny" and cfg.dataset == "digits" and cfg.lam is None
    assert cfg.model_overrides == {"img_size": 8, "patch_size": 2, "n_iter": 2}
    full = tr.live_config("asymmixer", lam=1e-2, quick=False)
    assert full.model == "asymmixer_cifar_small" and full.lam == 1e-2 and full.dataset == "cifar10"
    r = tr.quick_run("symmixer", quick=True, epochs=1, train_subset=256, test_subset=64)
    assert r["label"] == "SymMixer" and len(r["history"]) == 1 and 0.0 <= r["test_acc"] <= 1.0
    cos = np.concatenate(list(tr.symmetry_by_block(r).values()))
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)        # tied by construction


def test_the_committed_study_loads_through_the_schema_upgrade():
    """hopfield_lab/results/cifar10 holds version-1 files (no schema_version/status): they load, labelled, in order."""
    raw = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    assert len(raw) == 9 and all("schema_version" not in r and "status" not in r for r in raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # not one file skipped
        rs = tr.load_results(RESULTS)
    assert [r["label"] for r in rs] == ["vanilla (serial)", "ParaMixer", "SymMixer", "AsymMixer λ=0",
                                        "AsymMixer λ=1e-05", "AsymMixer λ=1e-04", "AsymMixer λ=1e-03",
                                        "AsymMixer λ=1e-02", "AsymMixer λ=1e-01"]
    assert all(r["schema_version"] == results.SCHEMA_VERSION and r["status"] == "finished" and r["finished"] for r in rs)
    by = {r["label"]: r for r in rs}
    assert by["ParaMixer"]["test_acc"] == RunResult.from_dict(raw[6]).test_acc and by["AsymMixer λ=1e-02"]["lam"] == 1e-2


# --- several seeds and several studies --------------------------------------------------------------

def _seeded(model, accs, lam=None, epochs=3, cos=(0.0, 0.0), **kw):
    """One fake run per seed (built through RunResult), test accuracies ``accs``."""
    runs = []
    for seed, acc in enumerate(accs):
        d = _fake_result(model, acc, lam=lam, epochs=epochs, cos=(cos[0] + 0.1 * seed, cos[1]), **kw)
        runs.append(RunResult.from_dict(dict(d, seed=seed, wall_time_s=6.0 * epochs)).to_dict())
    return runs


@pytest.fixture
def multi_seed_dir(tmp_path):
    runs = (_seeded("paramixer_cifar_small", [0.70, 0.72, 0.74])
            + _seeded("symmixer_cifar_small", [0.60, 0.61, 0.62], cos=(1.0, 1.0))
            + _seeded("asymmixer_cifar_small", [0.68, 0.66], lam=0.0, cos=(0.7, 0.7))
            + _seeded("asymmixer_cifar_small", [0.61], lam=1e-2, cos=(0.99, 0.99)))
    for r in runs:
        name = f"{r['model']}_lam{r['lam']}_seed{r['seed']}.json"
        (tmp_path / name).write_text(json.dumps(r))
    return tmp_path


def test_seeds_of_one_configuration_are_grouped_with_mean_and_sd(multi_seed_dir):
    rs = tr.load_results(multi_seed_dir)
    assert [r["seed"] for r in rs[:3]] == [0, 1, 2] and all(r["study"] == "3 epochs" for r in rs)
    groups = tr.group_runs(rs)
    assert [g["label"] for g in groups] == ["ParaMixer", "SymMixer", "AsymMixer λ=0", "AsymMixer λ=1e-02"]
    assert [g["seeds"] for g in groups] == [[0, 1, 2], [0, 1, 2], [0, 1], [0]]
    rows = {r["label"]: r for r in tr.results_table(rs)}
    assert rows["ParaMixer"]["test_acc"] == pytest.approx(0.72)
    assert rows["ParaMixer"]["test_acc_sd"] == pytest.approx(0.02)            # sample sd of 0.70, 0.72, 0.74
    assert rows["ParaMixer"]["n_seeds"] == 3 and rows["ParaMixer"]["seed"] is None
    assert math.isnan(rows["AsymMixer λ=1e-02"]["test_acc_sd"]) and rows["AsymMixer λ=1e-02"]["seed"] == 0
    ci = rows["ParaMixer"]["test_acc_ci"]                                     # 0.72 ± t_{0.975,2} · 0.02/√3
    assert (ci.low, ci.high) == pytest.approx((0.72 - 0.0496828, 0.72 + 0.0496828), abs=1e-6)
    assert rows["AsymMixer λ=1e-02"]["test_acc_ci"] is None
    table = tr.format_table(tr.results_table(rs))
    assert "72.0±2.0%" in table and "seeds" in table.splitlines()[0] and "61.0%" in table
    assert "67.0 to 77.0%" in table
    assert tr.settings_summary(rs)["training"].endswith("seeds 0, 1, 2")
    s = tr.lambda_stats(rs)
    np.testing.assert_allclose(s["mean"], [0.67, 0.61])
    np.testing.assert_allclose(s["sd"][0], np.std([0.68, 0.66], ddof=1))
    assert math.isnan(s["sd"][1]) and s["n"].tolist() == [2, 1] and s["values"][0] == [0.68, 0.66]
    assert math.isnan(s["low"][1]) and s["low"][0] < 0.67 < s["high"][0]
    assert tr.reference_stats(rs)["paramixer"] == pytest.approx((0.72, 0.02, 3))
    assert tr.tying_cost(rs) == pytest.approx(0.61 - 0.72)


def test_figures_draw_the_mean_over_seeds_with_a_spread(multi_seed_dir):
    from matplotlib.collections import LineCollection, PathCollection, PolyCollection

    rs = tr.load_results(multi_seed_dir)
    ax = tr.plot_accuracy_vs_lambda(rs).axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [67.0, 61.0])           # the mean per λ
    assert any(isinstance(c, LineCollection) for c in ax.collections)           # 95 % interval bars
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 1 and len(dots[0].get_offsets()) == 3                    # every seed of the λ sweep
    assert any("3 seeds" in t.get_text() for t in ax.get_legend().get_texts())
    ax = tr.plot_learning_curves(rs).axes[0]
    assert len(ax.lines) == 4                                                    # one line per configuration
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [72.0 * k / 3 for k in (1, 2, 3)])
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3       # bands: the multi-seed ones
    fig = tr.plot_symmetry_blocks(rs)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [0.1, 0.11])   # ParaMixer: mean of 0, .1, .2
    m = tr.symmetry_over_seeds(tr.group_runs(rs)[0]["runs"])
    assert m["tokens"].shape == (3, 2)
    fig = tr.plot_symmetry_history(rs, branch="channels")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [0.005] * 3)
    with pytest.raises(ValueError, match="branch"):
        tr.plot_symmetry_history(rs, branch="token")
    w = tr.make_widget(rs)
    assert w.last["label"] == "AsymMixer λ=0" and len(w.last["runs"]) == 2
    np.testing.assert_allclose(w.last["tokens"], [0.75, 0.76])                  # mean of the two seeds
    html, labels = tr.lambda_player(rs)
    assert labels == ["AsymMixer λ=0", "AsymMixer λ=1e-02"]


def test_studies_of_different_lengths_are_kept_apart(tmp_path):
    short = _seeded("paramixer_cifar_small", [0.70], epochs=3) + _seeded("symmixer_cifar_small", [0.6], epochs=3)
    long = _seeded("paramixer_cifar_small", [0.80, 0.82], epochs=5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i, r in enumerate(short):
        (tmp_path / "a" / f"r{i}.json").write_text(json.dumps(r))
    for i, r in enumerate(long):
        (tmp_path / "b" / f"r{i}.json").write_text(json.dumps(r))
    rs = tr.load_results([tmp_path / "b", tmp_path / "a"])
    assert [r["epochs"] for r in rs] == [3, 3, 5, 5]                            # shortest study first
    studies = tr.by_study(rs)
    assert list(studies) == ["3 epochs", "5 epochs"] and len(studies["5 epochs"]) == 2
    assert len(tr.group_runs(rs)) == 3                                          # same model, two studies: two groups
    for fn in (tr.plot_learning_curves, tr.plot_accuracy_vs_lambda, tr.plot_symmetry_blocks,
               tr.plot_symmetry_history, tr.lambda_curve, tr.alignment):
        with pytest.raises(ValueError, match="by_study"):
            fn(rs)
    rows = tr.results_table(rs)
    assert [r["study"] for r in rows] == ["3 epochs", "3 epochs", "5 epochs"]
    assert [r["epochs"] for r in rows] == [3, 3, 5]


def test_study_folders_find_every_committed_cifar10_study(tmp_path):
    for name in ("cifar10", "cifar10_30ep", "cifar10_reference", "cifar100", "full_size"):
        (tmp_path / name).mkdir()
    (tmp_path / "cifar10_notes.md").write_text("a file, not a folder")
    assert [p.name for p in tr.study_folders(tmp_path)] == ["cifar10", "cifar10_30ep"]
    assert tr.study_folders() == [RESULTS]                                      # the package ships one study today


# --- the 30-epoch reference ---------------------------------------------------------------------------

def test_the_reference_has_one_home_and_sits_beside_the_study():
    ref = tr.load_reference()
    assert "official" in ref["source"] and "not numbers from the paper" in ref["source"]
    assert ref["settings"]["epochs"] == 30 and len(ref["runs"]) == 9
    acc = {(r["family"], r["lam"]): r["test_acc"] for r in ref["runs"]}
    assert acc[("paramixer", None)] > acc[("vanillamixer", None)] > acc[("symmixer", None)]
    assert sorted(r["lam"] for r in ref["runs"] if r["epochs_done"] < 30) == [1e-6, 1e-4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = tr.load_results(RESULTS)
    rows = tr.reference_comparison(study, ref)
    assert len(rows) == 10                                                      # 9 of each, 8 in common
    by = {r["label"]: r for r in rows}
    assert by["AsymMixer λ=1e-05"]["ref"] is None and by["AsymMixer λ=1e-06"]["study"] is None
    assert by["ParaMixer"]["ref"] == acc[("paramixer", None)]
    assert by["ParaMixer"]["study"][0] == next(r["test_acc"] for r in study if r["label"] == "ParaMixer")
    text = tr.format_comparison(rows, "12 epochs")
    assert "this study, 12 epochs" in text and "reference, 30 epochs" in text
    assert text.count("*") == 3 and "stopped after 29 of 30 epochs" in text   # two runs and the footnote
    readme = (RESULTS.parent / "cifar10_reference" / "README.md").read_text()
    assert "not the paper's numbers" in readme
    for typed in ("78.8", "79.7", "74.6"):                                      # one home: the JSON
        assert typed not in readme and typed not in (RESULTS / "README.md").read_text()


def test_reference_comparison_and_loading_reject_bad_data(monkeypatch):
    ref = tr.load_reference()
    bad = dict(ref, runs=[dict(ref["runs"][0], family="nomixer")])
    with pytest.raises(ValueError):
        tr.reference_comparison([], bad)
    monkeypatch.setattr(tr, "load_committed", lambda name: dict(ref, runs=[dict(ref["runs"][0], test_acc=78.8)]))
    with pytest.raises(ValueError, match="fraction"):
        tr.load_reference()


# --- alignment of the free weights -------------------------------------------------------------------

def test_alignment_is_measured_in_random_scales(multi_seed_dir):
    assert tr.random_cosine_scale(64, 128) == pytest.approx(1 / math.sqrt(8192))
    rs = tr.load_results(multi_seed_dir)
    rows = tr.alignment(rs)                                                     # ParaMixer only (no vanilla run)
    assert [(r["label"], r["branch"]) for r in rows] == [("ParaMixer", "tokens"), ("ParaMixer", "channels")]
    tok = rows[0]
    assert tok["scale"] == pytest.approx(1 / math.sqrt(4 * 8)) and tok["n_seeds"] == 3
    np.testing.assert_allclose(tok["cos"], [0.1, 0.11])
    np.testing.assert_allclose(tok["sd"], [0.1, 0.1])
    np.testing.assert_allclose(tok["z"], np.array([0.1, 0.11]) * math.sqrt(32))
    fake = [{"label": "X", "branch": "tokens", "cos": np.array([0.5, -0.05, -0.5]), "n_seeds": 1,
             "scale": 0.1, "z": np.array([5.0, -0.5, -5.0])}]
    text = tr.format_alignment(fake)
    assert "anti-aligned in block 2 (cos -0.500, -5 scales)" in text
    assert "aligned in block 0 (cos +0.500, +5 scales)" in text and "within ±3 scales in block 1" in text


def test_the_committed_free_mixers_are_anti_aligned_as_the_chapter_says():
    """Chapter 8's finding, read from the committed files: the ParaMixer's token MLPs after the
    first block are anti-aligned by more than 3 random scales (the chapter asserts it too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = {(r["label"], r["branch"]): r for r in tr.alignment(tr.load_results(RESULTS))}
    z = rows[("ParaMixer", "tokens")]["z"]
    assert z[0] > 3 and (z[1:] < -3).all()
    assert rows[("ParaMixer", "tokens")]["scale"] == pytest.approx(1 / math.sqrt(64 * 128))
    assert rows[("ParaMixer", "channels")]["scale"] == pytest.approx(1 / math.sqrt(256 * 1024))


# --- full mode: the expected time on a T4 --------------------------------------------------------------

def test_full_mode_estimate_scales_the_measured_time(multi_seed_dir):
    rs = tr.load_results(multi_seed_dir)                                        # wall time 6 s per epoch
    est = tr.full_mode_estimate([("paramixer", None), ("asymmixer", 1e-2)], rs, epochs=10, ratio=0.1)
    assert est["h100_s"] == pytest.approx(2 * 10 * 6.0) and est["t4_s"] == pytest.approx(2 * 10 * 6.0 / 0.1)
    assert [r[0] for r in est["runs"]] == ["ParaMixer", "AsymMixer λ=1e-02"]
    assert "an estimate" in est["text"] and "10x slower" in est["text"] and "FakeGPU" in est["text"]
    with pytest.raises(ValueError, match="no run of vanillamixer"):
        tr.full_mode_estimate([("vanillamixer", None)], rs)
    with pytest.raises(ValueError, match="ratio"):
        tr.full_mode_estimate([("paramixer", None)], rs, ratio=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = tr.load_results(RESULTS)
    est = tr.full_mode_estimate([("paramixer", None), ("symmixer", None)], study)
    assert 5 * 60 < est["t4_s"] < 15 * 60, "the full-mode live run must fit a Colab session"


def test_full_mode_live_config_matches_the_committed_study():
    cfg = tr.live_config("paramixer", quick=False)
    assert cfg.epochs == tr.FULL_LIVE_EPOCHS == 12 and cfg.batch_size == 512 and cfg.lr == 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = tr.load_results(RESULTS)
    assert {r["epochs"] for r in study} == {tr.FULL_LIVE_EPOCHS}


# --- the coding exercise ------------------------------------------------------------------------------

import torch  # noqa: E402

from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402


def cos_reference(W1, W2):
    inner = (W2 * W1.transpose(-1, -2)).sum(dim=(-2, -1))
    return inner / (torch.linalg.matrix_norm(W1) * torch.linalg.matrix_norm(W2))


def cos_by_trace(W1, W2):                   # ⟨W2, W1ᵀ⟩ = trace(W1 W2): also right
    inner = torch.einsum("...ij,...ji->...", W1, W2)
    return inner / (W1.flatten(-2).norm(dim=-1) * W2.flatten(-2).norm(dim=-1))


@pytest.mark.parametrize("fn", [cos_reference, cos_by_trace])
def test_weight_cosine_check_accepts_right_answers(verdict, fn):
    assert verdict(tr.check_weight_cosine, fn) == f"{CORRECT} Weight cosine cos∠(W2, W1ᵀ): correct."


def _stub(W1, W2):
    raise NotImplementedError


def no_sign(W1, W2):
    return cos_reference(W1, W2).abs()


def no_norm(W1, W2):
    return (W2 * W1.transpose(-1, -2)).sum(dim=(-2, -1))


def no_transpose(W1, W2):                   # pairs W2 with W1 entry by entry after flattening
    a, b = W1.flatten(-2), W2.flatten(-2)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def whole_stack(W1, W2):                    # one number for the whole stack
    return (W2 * W1.transpose(-1, -2)).sum() / (W1.norm() * W2.norm())


def squared_norm(W1, W2):                   # assumes ‖W2‖ = ‖W1‖
    return (W2 * W1.transpose(-1, -2)).sum(dim=(-2, -1)) / torch.linalg.matrix_norm(W1) ** 2


@pytest.mark.parametrize("fn, says", [
    (_stub, "not implemented yet"),
    (no_sign, "keep the sign"),
    (no_norm, "inner product"),
    (no_transpose, "transpose W1"),
    (whole_stack, "expected shape (3,)"),
    (squared_norm, "entries differ"),
    (lambda W1, W2: [0.0], "expected a torch.Tensor"),
])
def test_weight_cosine_check_rejects_typical_mistakes(verdict, fn, says):
    out = verdict(tr.check_weight_cosine, fn)
    assert out.startswith(f"{WRONG} Weight cosine cos∠(W2, W1ᵀ):"), out
    assert says in out, out


# --- checked outputs: the same on every machine --------------------------------------------------------

def _margin_to_rounding(x: float, decimals: int) -> float:
    """Distance of x from the nearest value at which rounding to ``decimals`` flips, in units of 10^-decimals."""
    scaled = x * 10 ** decimals
    return abs(scaled - math.floor(scaled) - 0.5)


def _with_threads(n, fn, *args, **kw):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args, **kw)
    finally:
        torch.set_num_threads(before)


def test_checked_cosines_at_init_print_the_same_on_any_thread_count():
    """The chapter prints these rounded to 3 decimals: far from a rounding boundary, and equal to
    float precision under 1 and 2 threads."""
    one, two = _with_threads(1, tr.init_cosines, 0), _with_threads(2, tr.init_cosines, 0)
    assert list(one) == ["vanillamixer", "paramixer", "symmixer", "asymmixer"]
    for fam in one:
        for a, b in zip(one[fam], two[fam]):
            assert abs(a - b) < 1e-9
            if abs(a - 1.0) > 1e-6:                                  # the tied 1.000 is exact enough
                assert _margin_to_rounding(a, 3) > 0.01, (fam, a)    # >= 1e-5 from flipping a digit
    assert abs(one["symmixer"][0] - 1.0) < 1e-6 and abs(one["asymmixer"][0] - 1 / math.sqrt(2)) < 0.01


def test_checked_block_energies_print_the_same_on_any_thread_count():
    one = _with_threads(1, tr.block_iteration_energies, 6, 0)
    two = _with_threads(2, tr.block_iteration_energies, 6, 0)
    assert one.shape == (6, 2) and one.dtype == torch.float64
    assert torch.allclose(one, two, rtol=0, atol=1e-8)
    for e in one[:, 0].tolist():
        assert _margin_to_rounding(e, 1) > 1e-3, e                   # 1e-4 from flipping the printed digit
    steps = one[1:] - one[:-1]
    assert bool((steps < -1.0).all()), "each step lowers the energy by far more than rounding"
