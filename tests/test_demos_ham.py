"""Tests of hopfield_lab.demos.ham, the demos of chapter 4 (hierarchical associative memory).

They drive the widget's callback the way Jupyter does (by setting control values) and check
mathematical facts of what the callbacks computed, not just that they ran.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import classical as cl  # noqa: E402
from hopfield_lab import lagrangians as lg  # noqa: E402
from hopfield_lab.demos import ham as dh  # noqa: E402


def test_ham_widget_callback():
    box = dh.make_widget()
    last = box.last
    assert last["method"] == "euler" and last["error"] is None
    assert last["increases"] == 0                                   # small step: the energy descends
    # every trajectory ends next to one of the stored patterns (the memories)
    end = last["traj"].x["v"]
    pats = dh.plane_patterns()
    assert float(torch.cdist(end, pats).min(-1).values.max()) < 0.1
    box.controls["dt"].value = 0.6                                  # Euler step >> 2 tau_h: unstable
    assert box.last["increases"] > 0 and box.last["dt"] == 0.6
    box.controls["method"].value = "rk4"                            # RK4's stability region is larger
    box.controls["dt"].value = 0.1
    assert box.last["increases"] == 0 and box.last["method"] == "rk4"
    box.controls["breaking"].value = 0.5                            # untied feedback: E goes up
    assert box.last["increases"] > 0


@pytest.mark.parametrize("method", dh.METHODS)
def test_simulate_with_zero_breaking_matches_library(method):
    ham = dh.plane_network(tau_h=0.3)
    xs = dh.plane_initial_states(ham, n=4)
    ref = dh.simulate(ham, xs, 30, 0.05, method)                    # the library's integrator
    mine = dh.simulate(ham, xs, 30, 0.05, method, breaking={"xi": torch.zeros(2, 3, dtype=torch.float64)})  # V: (N_v, K)
    assert torch.allclose(ref.states["v"], mine.states["v"], atol=1e-12)
    assert torch.allclose(ref.energy, mine.energy, atol=1e-12)
    with pytest.raises(ValueError, match="not in the network"):
        dh.simulate(ham, xs, 1, 0.05, method, breaking={"W9": torch.zeros(3, 2)})


@pytest.mark.parametrize("method", dh.METHODS)
def test_simulate_with_untied_feedback_follows_the_formula(method):
    """``breaking={"xi": V}``: the visible layer receives (xi^T + V) g_h; the energy recorded is the
    tied network's. Reference: the equations stepped by hand."""
    ham = dh.plane_network(tau_h=0.3)
    xs = dh.plane_initial_states(ham, n=4)
    V = dh.rotation_breaking(ham, 0.6)["xi"]
    assert V.shape == (2, 3)
    xi = ham.synapses["xi"].weight
    tau = {n: ham.layers[n].tau for n in xs}

    def velocity(x):  # tau dx/dt (descent: the step direction)
        g = ham.activations(x)
        return {"v": g["h"] @ (xi.T + V).T - x["v"], "h": g["v"] @ xi.T - x["h"]}

    def flow(x):
        return {n: v / tau[n] for n, v in velocity(x).items()}

    dt, x, ref = 0.05, dict(xs), [dict(xs)]
    for _ in range(30):
        if method == "descent":
            v = velocity(x)
            x = {n: x[n] + dt * v[n] for n in x}
        elif method == "euler":
            f = flow(x)
            x = {n: x[n] + dt * f[n] for n in x}
        else:
            k1 = flow(x)
            k2 = flow({n: x[n] + 0.5 * dt * k1[n] for n in x})
            k3 = flow({n: x[n] + 0.5 * dt * k2[n] for n in x})
            k4 = flow({n: x[n] + dt * k3[n] for n in x})
            x = {n: x[n] + dt / 6 * (k1[n] + 2 * k2[n] + 2 * k3[n] + k4[n]) for n in x}
        ref.append(x)
    tr = dh.simulate(ham, xs, 30, dt, method, breaking={"xi": V})
    for n in xs:
        torch.testing.assert_close(tr.states[n], torch.stack([r[n] for r in ref]), rtol=0, atol=1e-12)
    torch.testing.assert_close(tr.energy, torch.stack([ham.energy(r) for r in ref]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"breaking part V has shape \(3, 2\), expected \(2, 3\)"):
        dh.simulate(ham, xs, 1, dt, method, breaking={"xi": V.T})


def test_energy_increases_counts_only_real_rises():
    e = torch.tensor([[3.0, 1.0], [2.0, 1.0 + 1e-15], [2.5, 0.5]], dtype=torch.float64)
    assert dh.energy_increases(e) == 1


def test_memory_network_special_cases():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    q = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    red = dh.memory_network(X, lg.Softmax(beta=0.7), visible=lg.Identity()).eliminate("h")
    step = red.step({"v": q}, dt=1.0, method="euler")["v"]         # one Euler step with dt = tau_v
    assert torch.allclose(step, cl.ModernHopfieldNetwork(X, beta=0.7).update(q))
    # dense memory recalls K = N patterns, the quadratic (classical) network does not
    N = 32
    pats = cl.random_patterns(N, N, generator=gen, dtype=torch.float64)
    cues = cl.corrupt(pats, 0.1, generator=gen)
    dense = dh.memory_network(pats, lg.RePU(n=3), scale=(3 / N ** 2) ** (1 / 3)).eliminate("h")
    quad = dh.memory_network(pats, lg.Identity(), scale=math.sqrt(3 / N)).eliminate("h")
    assert dh.recall_fraction(dense, pats, cues) == 1.0
    assert dh.recall_fraction(quad, pats, cues) < 0.5
    with pytest.raises(ValueError, match="same shape"):
        dh.recall_fraction(dense, pats[:3], cues)


def test_plane_animation_has_frames():
    html = dh.plane_animation([0.05, 0.5]).data
    assert html.count("data:image/png") >= 2 or "frames[1]" in html
