"""Tests of hopfield_lab.demos.symmetry_breaking, the demos of chapter 7 (symmetry breaking in the ODE)."""
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


def test_summarize_keeps_counts_and_draws_like_the_run():
    r = sb.run(1.0, "small", seed=1, t_end=2.0, dt=0.01)
    s = sb.summarize(r, times=[0.0, 0.5, 1.0, 2.0])
    assert s["t"] == [0.0, 0.5, 1.0, 2.0]
    assert len(s["pseudo"]) == 4 and len(s["pseudo"][0]) == 10 and len(s["x_shown"][0]) == 2  # S*C = 2 entries
    assert s["pseudo_increases"] == r["pseudo_increases"].tolist() and s["n_steps"] == 200 * 10
    assert abs(s["pseudo"][-1][3] - float(r["pseudo"][-1, 3])) <= 1e-5 * abs(float(r["pseudo"][-1, 3]))
    import json
    assert json.loads(json.dumps(s)) == s                              # JSON-able as it is
    fig_run, fig_sum = sb.plot_run(r), sb.plot_run(s, label="summary")
    assert fig_run.axes[1].get_title() == fig_sum.axes[1].get_title()
    assert fig_sum._suptitle.get_text().startswith("summary: small system")


def test_increase_shares_counts_visible_rises():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    down = -t                                                          # never rises
    tiny_bump = -t.clone()
    tiny_bump[50] += 0.015                                             # one step up by 0.005: < 1 % of its range
    big_bump = torch.sin(6 * t)                                        # rises by most of its range
    shares = sb.increase_shares(torch.stack([down, tiny_bump, big_bump], dim=1))
    assert shares["frac_runs"] == pytest.approx(2 / 3) and shares["frac_visible"] == pytest.approx(1 / 3)
    assert 0 < shares["frac_steps"] < 2 / 3


def test_official_energy_is_the_pseudo_energy_with_sqrt_d_std_as_lagrangian():
    s = sb.make_system("large", 1.0, seed=3, pooled=True)
    X = odes.initial_states(s, batch=5, mean=1.0, std=2.5, seed=4)
    # the official notebook's formula, written out for the pooled coupling
    G = torch.nn.functional.layer_norm(X, (4, 8), eps=s.eps)
    g_s, g_c = G.sum(-1), G.sum(-2)                                    # (5, S), (5, C): pooled inputs
    h_s, h_c = g_s @ s.A.T, g_c @ s.B.T                                # (5, Ns), (5, Nc)
    legendre = (X * G).sum((-2, -1)) - torch.sqrt(((X - X.mean((-2, -1), keepdim=True)) ** 2).sum((-2, -1)))
    want = (legendre - odes.phi_gelu(h_s).sum(-1) - odes.phi_gelu(h_c).sum(-1)
            + 0.5 * (g_s * (torch.nn.functional.gelu(h_s) @ s.V_s.T)).sum(-1)
            + 0.5 * (g_c * (torch.nn.functional.gelu(h_c) @ s.V_c.T)).sum(-1))
    torch.testing.assert_close(sb.official_energy(s, X), want, rtol=1e-10, atol=1e-10)
    std = X.flatten(-2).std(-1, unbiased=False)                        # ... = pseudo + (D - √D) std + O(eps)
    extra = sb.official_energy(s, X) - s.pseudo_energy(X) - (32 - 32 ** 0.5) * std
    assert float(extra.abs().max()) < 32 * s.eps / float(std.min())


def test_official_energy_rises_along_the_tied_flow():
    r = sb.run(0.0, "large", seed=0, t_end=10.0, dt=0.05)
    assert int(r["increases"].sum()) == 0                              # E: a Lyapunov function
    assert sb.increase_shares(sb.official_energy(r["system"], r["x"]))["frac_runs"] > 0


def _flow_with(**change):
    def flow(X, A, B, V_s, V_c, eps):
        G = torch.nn.functional.layer_norm(X, change.get("ln_shape", X.shape[-2:]), eps=eps)
        V_s = 0 * V_s if change.get("no_V_s") else V_s
        V_c = 0 * V_c if change.get("no_V_c") else V_c
        mixing = (A.T + V_s) @ torch.nn.functional.gelu(A @ G) + torch.nn.functional.gelu(G @ B.T) @ (B + V_c.T)
        return mixing + change.get("leak", -1.0) * X
    return flow


def _not_implemented(X, A, B, V_s, V_c, eps):
    raise NotImplementedError


def _wrong_layout(X, A, B, V_s, V_c, eps):
    G = torch.nn.functional.layer_norm(X, X.shape[-2:], eps=eps)
    return (A.T + V_s) @ torch.nn.functional.gelu(A @ G) + torch.nn.functional.gelu(G @ B.T) @ (B + V_c) - X


@pytest.mark.parametrize("fn", [sb._reference_flow, _flow_with()], ids=["reference", "matmul form"])
def test_check_flow_accepts_right_answers(verdict, fn):
    assert verdict(sb.check_flow, fn) == "✔ the broken flow dX/dt: correct."


@pytest.mark.parametrize("fn, says", [
    (_flow_with(leak=0.0), "the leak −X is missing"),
    (_flow_with(leak=1.0), "wrong sign"),
    (_flow_with(no_V_s=True, no_V_c=True), "breaking parts V_s, V_c are missing"),
    (_flow_with(no_V_c=True), "channel feedback lacks V_c"),
    (_flow_with(ln_shape=(5,)), "whole S × C matrix"),
    (_wrong_layout, "V_c (C, Nc) like Bᵀ"),
    (_not_implemented, "not implemented yet"),
], ids=["no leak", "leak sign", "tied", "no V_c", "per-token LN", "V_c layout", "stub"])
def test_check_flow_rejects_typical_mistakes(verdict, fn, says):
    out = verdict(sb.check_flow, fn)
    assert out.startswith("✘") and says in out, out


def test_full_size_large_tiny_runs_the_chapter_code():
    data, settings = sb.full_size_large(tiny=True)
    assert settings["sizes"] == (4, 8, 20, 160) and settings["radii"] == (1.0, 2.5)
    tied, broken = data["runs"]["tied"], data["runs"]["broken"]
    assert tied["t"][-1] == settings["t_end"] and sum(tied["pseudo_increases"]) == 0
    assert broken["strength"] == 1.0 and broken["breaking_norms"] == pytest.approx([1.5, 4.0])
    r = sb.run(1.0, "large", seed=0, batch=settings["batch"], t_end=settings["t_end"], dt=settings["dt"])
    assert broken["pseudo_increases"] == r["pseudo_increases"].tolist()   # the same code as the chapter's run
    assert set(data["ensemble"]) == {"t_end=0.5", "t_end=1"}
    assert data["ensemble"]["t_end=1"]["frac_runs"][0] == 0.0
    assert data["step_check"]["tied"]["max_abs_state_diff"] < 1e-4


def test_estimate_seconds_scales_a_timed_probe():
    import time
    est = sb.estimate_seconds(lambda: time.sleep(0.05), scale=10)
    assert 0.45 < est < 5.0
    with pytest.raises(ValueError, match="scale"):
        sb.estimate_seconds(lambda: None, scale=0)


def test_plot_runs_titles_each_row():
    r0 = sb.run(0.0, "small", seed=1, t_end=0.5, dt=0.05)
    r1 = sb.summarize(sb.run(1.0, "small", seed=1, t_end=0.5, dt=0.05))
    fig = sb.plot_runs([r0, r1], labels=["live", "committed"])
    assert len(fig.axes) == 6
    titles = [sf._suptitle.get_text() for sf in fig.subfigs]
    assert titles[0].startswith("live: small system, breaking strength s = 0.00")
    assert titles[1].startswith("committed: small system, breaking strength s = 1.00")
    with pytest.raises(ValueError, match="labels"):
        sb.plot_runs([r0, r1], labels=["one"])
