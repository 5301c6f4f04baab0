"""Tests of the chapter 7 demos: symmetry breaking in the ODE."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import odes  # noqa: E402
from hopfield_lab.demos import symmetry_breaking as sb  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ chapter 7
def test_symmetry_breaking_widget_callback():
    w = sb.make_widget(size="small", strength=1.0, seed=1, dt=0.02)
    r = w.last
    assert r["size"] == "small" and r["x"].shape == (r["t"].shape[0], 10, 2, 1)
    assert int(r["pseudo_increases"].sum()) > 0            # broken flow: the pseudo-energy goes up
    A_broken = r["system"].A.clone()
    w.controls["strength"].value = 0.0                     # the callback reruns the tied system
    r0 = w.last
    assert r0["strength"] == 0.0 and r0["system"].is_symmetric
    torch.testing.assert_close(r0["system"].A, A_broken)  # only the breaking part changed
    assert int(r0["increases"].sum()) == 0 and int(r0["pseudo_increases"].sum()) == 0
    assert bool((r0["energy"][-1] <= r0["energy"][0]).all())
    w.controls["size"].value = "large"
    assert w.last["x"].shape[-2:] == (4, 8)


def test_run_matches_direct_integration():
    r = sb.run(0.5, "small", seed=2, t_end=1.0, dt=0.01)
    s = odes.small_system(asymmetric=True, seed=2).with_breaking_scale(0.5)
    x0 = odes.initial_states(s, batch=10, mean=0.5, std=0.5, seed=1)
    _, xs = odes.integrate(s, x0, t_end=1.0, dt=0.01)
    torch.testing.assert_close(r["x"], xs)
    torch.testing.assert_close(r["speed"], torch.linalg.matrix_norm(s.velocity(xs)))
    with pytest.raises(ValueError, match="size"):
        sb.run(1.0, "medium")
    with pytest.raises(ValueError, match="strength"):
        sb.make_system("small", -1.0)


def test_strength_player_and_landscape():
    n_open = len(plt.get_fignums())
    html, runs = sb.strength_player((0.0, 1.0), size="small", seed=1, dt=0.02)
    assert "<script" in html.data and html.data.count("data:image/png") >= 2
    assert len(plt.get_fignums()) == n_open
    assert int(runs[0]["pseudo_increases"].sum()) == 0 and int(runs[1]["pseudo_increases"].sum()) > 0
    s = odes.small_system(seed=0)
    fig = sb.landscape_figure(s, odes.initial_states(s, 3), half_width=0.5, dt=0.01, t_end=2.0)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("$x_1$") and len(ax.lines) == 9  # 3 trajectories x (path, start, end)


def test_ensemble_fraction_zero_without_breaking():
    ens = sb.ensemble_fraction([0.0, 1.0], size="small", n_systems=16, batch=4, dt=0.02)
    assert ens["frac_runs"][0] == 0.0 and ens["frac_steps"][0] == 0.0
    assert ens["frac_runs"][1] > 0.0 and ens["n_runs"] == 64
