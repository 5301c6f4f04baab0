"""Tests of the demos of chapter 5 (Energy MetaFormer): the denoising measures, the figures drawn
from plain data, the full-size study and its compact storage, the T4 estimate, the auto-checked
exercise, and the widget.

The widget tests drive the callbacks the way Jupyter does (by setting control values) and check
mathematical facts of what the callbacks computed, not just that they ran.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import metaformer as mf  # noqa: E402
from hopfield_lab.demos import metaformer as dm  # noqa: E402
from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402


def _mf_model_and_images():
    gen = torch.Generator().manual_seed(0)
    imgs = (torch.rand(8, 1, 5, 5, generator=gen) * 255).to(torch.uint8)
    X = mf.prepare_images(imgs)
    m = mf.EnergyMetaFormer(25, 12, 10, init_mean=0.0, init_std=0.3, generator=gen)
    return m, X


def test_correlation_is_pearson():
    a = torch.randn(4, 30, dtype=torch.float64)
    assert torch.allclose(dm.correlation(a, 3 * a + 2), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(dm.correlation(a, -a), -torch.ones(4, dtype=torch.float64))


def test_denoise_trajectory_shapes_and_energy_descent():
    m, X = _mf_model_and_images()
    t = dm.denoise_trajectory(m, X, sigma=0.2, steps=15, alpha=0.05, seed=3)
    assert t["frames"].shape == (16, 8, 25) and t["energy"].shape == (16, 8)
    assert (t["energy"].diff(dim=0) <= 1e-6 * t["energy"].abs().max()).all()
    # frame 0 is the LayerNorm of the noisy cue, so it correlates with the cue perfectly
    assert torch.allclose(dm.correlation(t["frames"][0], t["noisy"]), torch.ones(8), atol=1e-4)
    # sigma = 0: the noisy cue is the clean image
    t0 = dm.denoise_trajectory(m, X, sigma=0.0, steps=0)
    assert torch.allclose(t0["corr_noisy"], torch.ones(8), atol=1e-5)


def test_widget_callback_follows_the_sliders():
    m, X = _mf_model_and_images()
    box = dm.make_widget(m, X, (5, 5), n_show=4)
    assert box.last["steps"] == 10 and box.last["frames"].shape == (11, 4, 25)
    box.controls["steps"].value = 3
    box.controls["alpha"].value = 0.05
    box.controls["sigma"].value = 0.0
    last = box.last
    assert (last["sigma"], last["steps"], last["alpha"]) == (0.0, 3, 0.05)
    assert last["frames"].shape == (4, 4, 25) and last["energy"].shape == (4, 4)
    assert torch.allclose(last["noisy"], X[:4])  # no noise
    # the frames are the model's own descent
    x = m.init_state(X[:4])
    for _ in range(3):
        x = m.step(x, 0.05)
    assert torch.allclose(last["frames"][-1], m.L_v.activation(x.v).detach(), atol=1e-6)
    assert (last["energy"].diff(dim=0) <= 1e-6).all()


def test_descent_player_and_receptive_fields():
    import matplotlib.pyplot as plt

    m, X = _mf_model_and_images()
    html, traj = dm.descent_player(m, X, (5, 5), steps=4, n_show=3)
    assert "<script" in html.data and traj["frames"].shape == (5, 3, 25)
    fig, ax = plt.subplots()
    im = dm.plot_receptive_fields(m, (5, 5), layer="c", n=9, ax=ax)
    assert im.get_array().shape == (3 * 6 - 1, 3 * 6 - 1)
    plt.close(fig)


# --- noise sweep and examples ----------------------------------------------------------------------

def test_sigma_sweep_and_examples_are_the_trajectories_scores():
    m, X = _mf_model_and_images()
    sw = dm.sigma_sweep(m, X, sigmas=(0.0, 0.2), steps=4, alpha=0.05, seed=3)
    t = dm.denoise_trajectory(m, X, sigma=0.2, steps=4, alpha=0.05, seed=3)
    assert sw["sigmas"] == [0.0, 0.2] and sw["r_cue"][0] == pytest.approx(1.0, abs=1e-5)
    assert sw["r_cue"][1] == pytest.approx(float(t["corr_noisy"].mean()))
    assert sw["r_recall"][1] == pytest.approx(float(t["corr_out"].mean()))
    ex = dm.denoising_examples(m, X[:3], sigmas=(0.2,), steps=4, alpha=0.05, seed=3)
    assert ex["clean"].shape == (3, 25) and len(ex["noisy"]) == len(ex["recall"]) == 1
    t3 = dm.denoise_trajectory(m, X[:3], sigma=0.2, steps=4, alpha=0.05, seed=3)
    assert torch.allclose(ex["recall"][0], t3["frames"][-1]) and torch.allclose(ex["noisy"][0], t3["noisy"])
    assert torch.allclose(ex["r_recall"][0], dm.correlation(ex["recall"][0], X[:3]), atol=1e-6)
    # the prototype score: the average training image against itself correlates perfectly
    assert dm.mean_image_correlation(X, X.mean(0, keepdim=True)) == pytest.approx(1.0, abs=1e-6)


def test_loss_references_are_the_losses_of_those_recalls():
    _, X = _mf_model_and_images()
    ref = dm.loss_references(X)
    D = X.shape[1]
    perfect = (X - X.mean(1, keepdim=True)) / (X - X.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True).sqrt()
    assert ref["perfect"] == pytest.approx(float((perfect - X).pow(2).mean()), rel=1e-5)
    m = X.mean(0, keepdim=True).expand_as(X)
    proto = (m - m.mean(1, keepdim=True)) / (m - m.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True).sqrt()
    assert ref["mean_image"] == pytest.approx(float((proto - X).pow(2).mean()), rel=1e-5)
    assert ref["perfect"] < ref["mean_image"] < 1 + 1 / D


def test_figures_from_plain_data():
    import matplotlib.pyplot as plt

    m, X = _mf_model_and_images()
    fig = dm.plot_fields(m.receptive_fields("s"), m.receptive_fields("c"), (5, 5), "fields", n=9)
    assert fig.axes[0].images[0].get_array().shape == (3 * 6 - 1, 3 * 6 - 1)
    plt.close(fig)
    fig, ax = plt.subplots()
    dm.plot_loss({"loss": [0.9, 0.8], "step_loss": [1.0, 0.9, 0.85, 0.8]}, ax, "loss")
    per_batch, per_epoch = ax.lines
    assert list(per_batch.get_xdata()) == [0.0, 0.5, 1.0, 1.5] and list(per_epoch.get_xdata()) == [1, 2]
    ax.clear()
    E = mf.energy_descent(m, n_states=3, steps=5, alpha=0.05)
    dm.plot_energy_descent(E, ax, "energy", alpha=0.05)
    assert len(ax.lines) == 4 and list(ax.lines[-1].get_ydata()) == pytest.approx(E.mean(1).tolist())
    plt.close(fig)
    ex = dm.denoising_examples(m, X[:4], sigmas=(0.1, 0.3), steps=2, alpha=0.05)
    fig = dm.plot_denoising_examples(ex, (5, 5), "examples")
    assert len(fig.axes) == (1 + 2 * 2) * 4
    plt.close(fig)


# --- the full-size study ---------------------------------------------------------------------------

def test_pack_round_trip_is_compact_and_within_one_level():
    x = torch.randn(6, 784, generator=torch.Generator().manual_seed(0))
    d = dm._pack(x)
    y = dm._unpack(d)
    step = (x.max(1).values - x.min(1).values)[:, None] / 255
    assert y.shape == x.shape and ((x - y).abs() <= step / 2 + 1e-6).all()
    assert len(d["uint8_zlib_base64"]) < 1.4 * x.numel()          # about a byte per value


def test_full_size_study_tiny_and_reload(tmp_path):
    from hopfield_lab import results

    data, settings = dm.full_size_ch05_metaformer(tiny=True)
    assert settings["dataset"] == "digits" and settings["config"]["epochs"] == 2
    assert data["n_train"] == 256 and data["n_test"] == 64 and data["shape"] == [8, 8]
    t = data["timing"]
    assert t["image_passes"] == 2 * 256 and t["flops_per_image"] == mf.denoising_flops(64, 32, 32, 10)
    assert len(data["history"]["step_loss"]) == 2 * 4 and len(data["sweep"]["r_recall"]) == len(dm.SIGMAS)
    assert data["loss_references"]["perfect"] < data["loss_references"]["mean_image"]
    results.save("ch05_metaformer.json", data, settings={**settings, "tiny": True}, seconds=1.0, root=tmp_path)
    full = dm.load_full_size(path=tmp_path / "ch05_metaformer.json")
    assert full["fields_s"].shape == (32, 64) and full["shape"] == (8, 8)
    assert torch.allclose(full["fields_s"].norm(dim=1), torch.ones(32), atol=0.05)   # unit rows, quantised
    assert full["energy"].shape == (dm.DESCENT["steps"] + 1, dm.DESCENT["n_states"])
    assert len(full["examples"]["recall"]) == len(dm.EXAMPLE_SIGMAS)
    assert full["examples"]["clean"].shape == (8, 64)


def test_committed_full_size_result_is_what_chapter_5_describes():
    """The chapter's prose about the committed run rests on these facts of its JSON."""
    full = dm.load_full_size()
    s = full["settings"]
    assert s["dataset"] == "mnist-test10k" and not s["tiny"] and s["network"] == "900-784-900"
    assert s["config"]["epochs"] == 200 and full["n_train"] == 8000 and full["n_test"] == 2000
    assert len(full["history"]["step_loss"]) == 3200                       # 3,200 Adam steps
    assert full["fields_s"].shape == (64, 784) and full["shape"] == (28, 28)
    i3 = dm.SIGMAS.index(0.3)
    sw = full["sweep"]
    assert sw["r_cue"][i3] < 0.15 < full["r_mean"] < sw["r_recall"][i3]    # recall beats the prototype
    assert all(r > c for r, c in zip(sw["r_recall"][1:], sw["r_cue"][1:]))  # from sigma = 0.05 on
    assert sw["r_recall"][0] < 1.0
    ref = full["loss_references"]
    assert ref["perfect"] < full["history"]["loss"][-1] < ref["mean_image"]
    E = full["energy"]                                                      # (29, 16)
    rise = E.diff(dim=0).clamp(min=0)
    assert int((rise > 1e-6 * E.abs().max()).sum()) == 17                  # the small late rises the text reports
    assert float(rise.max()) < 5e-4 * float(E[-1].abs().min())              # at most 0.05 % of the level
    assert not (rise[:20] > 0).any()                                        # none in the first 20 updates


def test_colab_t4_estimate_is_derived_from_the_measured_rate():
    cfg = mf.DenoisingConfig.paper()
    flops = mf.denoising_flops(784, 900, 900, 10)
    measured = {"flops_per_second": 1e11, "seconds_per_image": flops / 1e11}
    line = dm.colab_t4_estimate(cfg, 60_000, 784, measured)
    total = 100 * 60_000 * flops
    assert "estimate" in line and f"{total:.1e}" in line
    assert f"{dm.T4_PEAK_FLOPS * dm.T4_UTILISATION / 1e11:.0f}x faster" in line
    assert f"about {total / (dm.T4_PEAK_FLOPS * dm.T4_UTILISATION) / 60:.0f} min" in line


# --- the auto-checked exercise ----------------------------------------------------------------------

def _reference(x_s, x_v, x_c, xi_s, xi_c, eps):
    g_s, g_c = torch.relu(x_s), torch.relu(x_c)
    xc = x_v - x_v.mean(-1, keepdim=True)
    g_v = xc / torch.sqrt(xc.pow(2).mean(-1, keepdim=True) + eps)
    return x_s - g_v @ xi_s.T, x_v - g_s @ xi_s - g_c @ xi_c, x_c - g_v @ xi_c.T


def _with_layer_norm(x_s, x_v, x_c, xi_s, xi_c, eps):
    g_v = torch.nn.functional.layer_norm(x_v, x_v.shape[-1:], eps=eps)
    return x_s - g_v @ xi_s.T, x_v - torch.relu(x_s) @ xi_s - torch.relu(x_c) @ xi_c, x_c - g_v @ xi_c.T


@pytest.mark.parametrize("fn", [_reference, _with_layer_norm])
def test_energy_gradient_check_accepts_right_answers(verdict, fn):
    assert verdict(dm.check_energy_gradient, fn) == f"{CORRECT} Closed-form energy gradient: correct."


def _stub(x_s, x_v, x_c, xi_s, xi_c, eps):
    raise NotImplementedError


def _sign(*a):
    d_s, d_v, d_c = _reference(*a)
    return 2 * a[0] - d_s, d_v, d_c                      # x_s + xi_s g_v


def _states(x_s, x_v, x_c, xi_s, xi_c, eps):           # inputs from the states, not the activations
    return x_s - x_v @ xi_s.T, x_v - x_s @ xi_s - x_c @ xi_c, x_c - x_v @ xi_c.T


def _no_c_feedback(*a):
    d_s, d_v, d_c = _reference(*a)
    return d_s, d_v + torch.relu(a[2]) @ a[4], d_c


def _unbiased(x_s, x_v, x_c, xi_s, xi_c, eps):
    g_v = (x_v - x_v.mean(-1, keepdim=True)) / torch.sqrt(x_v.var(-1, keepdim=True) + eps)
    return x_s - g_v @ xi_s.T, x_v - torch.relu(x_s) @ xi_s - torch.relu(x_c) @ xi_c, x_c - g_v @ xi_c.T


def _transposed(x_s, x_v, x_c, xi_s, xi_c, eps):       # xi_s g_v written as g_v @ xi_s: a shape error
    g_v = torch.nn.functional.layer_norm(x_v, x_v.shape[-1:], eps=eps)
    return x_s - g_v @ xi_s, x_v, x_c


@pytest.mark.parametrize("fn, says", [
    (_stub, "not implemented yet"),
    (_sign, "wrong sign"),
    (_states, "use the activations"),
    (_no_c_feedback, "ξ_cᵀ g_c from the layer x_c is missing"),
    (_unbiased, "biased variance"),
    (_transposed, "raised RuntimeError"),
    (lambda *a: torch.zeros(3), "return a tuple of three tensors"),
])
def test_energy_gradient_check_rejects_typical_mistakes(verdict, fn, says):
    out = verdict(dm.check_energy_gradient, fn)
    assert out.startswith(f"{WRONG} Closed-form energy gradient:"), out
    assert says in out, out


# --- checked outputs of the chapter are machine-independent -----------------------------------------

def _far_from_rounding(x: float, decimals: int, margin: float = 1e-7) -> bool:
    """True when float noise below ``margin`` cannot change ``round(x, decimals)``."""
    scaled = x * 10 ** decimals
    return abs(scaled - round(scaled) - 0.5) > margin * 10 ** decimals and abs(
        scaled - round(scaled) + 0.5) > margin * 10 ** decimals


def test_toy_training_prints_the_same_numbers_for_any_thread_count():
    """The chapter prints the toy losses to 4 decimals (float64): they agree across thread counts
    and lie far from a rounding boundary, so summation order cannot change the printed digits."""
    before_threads = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(dm.toy_denoising(mf.DenoisingConfig.quick()))
    finally:
        torch.set_num_threads(before_threads)
    (b1, a1), (b2, a2) = runs
    assert abs(b1 - b2) < 1e-12 and abs(a1 - a2) < 1e-12
    assert a1 < b1 and _far_from_rounding(b1, 4) and _far_from_rounding(a1, 4)


def test_first_check_cell_energies_are_far_from_rounding():
    """The chapter's first checked cell prints mean energies of a float64 descent to 3 decimals."""
    gen = torch.Generator().manual_seed(0)
    small = mf.EnergyMetaFormer(16, 10, 12, init_mean=0.0, init_std=0.5, generator=gen).double()
    x0 = small.random_state(32, scale=2.0, generator=gen)
    with torch.no_grad():
        _, E = small.descend(x0, steps=40, alpha=0.05, record_energy=True)
    for k in (0, 10, 20, 40):
        assert _far_from_rounding(float(E[k].mean()), 3), float(E[k].mean())


@pytest.mark.parametrize("kw, says", [({"sigma": float("nan")}, "sigma .* must be a finite number >= 0, got nan"),
                                      ({"alpha": float("nan")}, "alpha .* must be a positive, finite number"),
                                      ({"alpha": 0.0}, "alpha .* must be a positive, finite number"),
                                      ({"nan_pixel": True}, "the clean images hold 1 NaN/inf values"),
                                      ({"alpha": 1e30}, r"the descent blew up .* use a smaller alpha")])
def test_denoise_trajectory_refuses_nan_in_one_line(kw, says):
    m, X = _mf_model_and_images()
    if kw.pop("nan_pixel", False):
        X = X.clone()
        X[0, 0] = float("nan")
    with pytest.raises(ValueError, match=says):
        dm.denoise_trajectory(m, X, steps=3, **kw)
