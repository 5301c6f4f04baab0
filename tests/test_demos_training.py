"""hopfield_lab.demos.training (book chapter 8): reading result files, tables, figures, the widget, live runs."""
import json
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
        model=model, lam=lam, dataset="cifar10", epochs=epochs, epochs_done=epochs, seed=0, test_acc=acc,
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
    assert ax.get_xscale() == "symlog" and "λ" in ax.get_xlabel() and ax.get_title()
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
    assert all(r["schema_version"] == 2 and r["status"] == "finished" and r["finished"] for r in rs)
    by = {r["label"]: r for r in rs}
    assert by["ParaMixer"]["test_acc"] == RunResult.from_dict(raw[6]).test_acc and by["AsymMixer λ=1e-02"]["lam"] == 1e-2
