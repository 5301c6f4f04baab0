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


@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)      # as in the chapter: the random draws depend on it
    yield
    torch.set_default_dtype(old)


def test_capacity_verdicts_are_far_from_sign_ties(float64_default):
    """Section 4.4's recall fractions are a checked output: each cue's verdict (all signs right or
    not) must not depend on rounding. Reruns the chapter's quick-mode draws (N = 64, 64 cues per
    load) and runs the networks at the loads where the recall is partial, for all three hidden
    Lagrangians: every margin min_i t_i g_i is far from 0."""
    N, cues_per_k = 64, 64
    gen = torch.Generator().manual_seed(11)
    kinds = {"quadratic": (lg.Identity(), math.sqrt(3 / N)), "dense": (lg.RePU(n=3), (3 / N ** 2) ** (1 / 3)),
             "modern": (lg.Softmax(beta=0.5 / 3), 3.0)}
    fractions = {}
    for load in [0.0625, 0.125, 0.25, 0.5, 1, 2, 4, 8]:
        K = int(load * N)
        pats = cl.random_patterns(K, N, generator=gen, dtype=torch.float64)
        which = torch.randint(0, K, (cues_per_k,), generator=gen)
        targets = pats[which]
        cues = cl.corrupt(targets, 0.1, generator=gen)
        if load not in (0.125, 0.25, 4, 8):
            continue
        for name, (hidden, a) in kinds.items():
            m = dh.recall_margins(dh.memory_network(pats, hidden, scale=a).eliminate("h"), targets, cues)
            assert m.shape == (cues_per_k,)
            assert float(m.abs().min()) > 1e-3, (load, name)
            fractions[load, name] = float((m > 0).double().mean())
    # the partial recalls the chapter prints (0.59, 0.12 | 0.92, 0.56)
    assert [round(fractions[k], 2) for k in ((0.125, "quadratic"), (0.25, "quadratic"), (4, "dense"), (8, "dense"))] \
        == [0.59, 0.12, 0.92, 0.56]


# --- the auto-checked coding exercise: the energy of a chain ---------------------------------------

from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402


def _activations(xs, lags):
    return {n: lags[n].activation(x) for n, x in xs.items()}


def chain_reference(xs, W1, W2, lags):
    g = _activations(xs, lags)
    layers = sum((xs[n] * g[n]).sum(-1) - lags[n](xs[n]) for n in xs)
    return layers - (g["h1"] * (g["v"] @ W1.T)).sum(-1) - (g["h2"] * (g["h1"] @ W2.T)).sum(-1)


def chain_einsum(xs, W1, W2, lags):          # the same energy, written with einsum and legendre()
    g = _activations(xs, lags)
    layers = sum(lags[n].legendre(xs[n]) for n in xs)
    return (layers - torch.einsum("bi,ij,bj->b", g["h1"], W1, g["v"])
            - torch.einsum("bi,ij,bj->b", g["h2"], W2, g["h1"]))


def chain_twice(xs, W1, W2, lags):           # couples each pair once per direction
    g = _activations(xs, lags)
    return chain_reference(xs, W1, W2, lags) - (g["h1"] * (g["v"] @ W1.T)).sum(-1) - (g["h2"] * (g["h1"] @ W2.T)).sum(-1)


def chain_minus_l(xs, W1, W2, lags):         # layer energy -L instead of <x, g> - L
    g = _activations(xs, lags)
    return chain_reference(xs, W1, W2, lags) - sum((xs[n] * g[n]).sum(-1) for n in xs)


def chain_states(xs, W1, W2, lags):          # couples the states, not the activations
    g = _activations(xs, lags)
    layers = sum((xs[n] * g[n]).sum(-1) - lags[n](xs[n]) for n in xs)
    return layers - (xs["h1"] * (xs["v"] @ W1.T)).sum(-1) - (xs["h2"] * (xs["h1"] @ W2.T)).sum(-1)


def chain_plus(xs, W1, W2, lags):            # wrong sign of the couplings
    g = _activations(xs, lags)
    layers = sum((xs[n] * g[n]).sum(-1) - lags[n](xs[n]) for n in xs)
    return layers + (g["h1"] * (g["v"] @ W1.T)).sum(-1) + (g["h2"] * (g["h1"] @ W2.T)).sum(-1)


def chain_no_w2(xs, W1, W2, lags):
    g = _activations(xs, lags)
    layers = sum((xs[n] * g[n]).sum(-1) - lags[n](xs[n]) for n in xs)
    return layers - (g["h1"] * (g["v"] @ W1.T)).sum(-1)


def chain_total(xs, W1, W2, lags):           # sums over the batch
    return chain_reference(xs, W1, W2, lags).sum()


def chain_stub(xs, W1, W2, lags):
    raise NotImplementedError


@pytest.mark.parametrize("fn", [chain_reference, chain_einsum])
def test_chain_energy_check_accepts_right_answers(verdict, fn):
    assert verdict(dh.check_chain_energy, fn) == f"{CORRECT} Energy of the three-layer chain: correct."


@pytest.mark.parametrize("fn, says", [
    (chain_twice, "coupled once"),
    (chain_minus_l, "not −L(x)"),
    (chain_states, "not the states x"),
    (chain_plus, "minus sign"),
    (chain_no_w2, "through W2 is missing"),
    (chain_total, "expected shape (6,), got ()"),
    (chain_stub, "not implemented yet"),
])
def test_chain_energy_check_rejects_typical_mistakes(verdict, fn, says):
    out = verdict(dh.check_chain_energy, fn)
    assert out.startswith(f"{WRONG} Energy of the three-layer chain:"), out
    assert says in out, out


def test_chain_network_matches_the_energy_formula():
    net = dh.chain_network(sizes=(5, 4, 3), seed=1)
    xs = net.init_states(batch=2, kind="randn", generator=torch.Generator().manual_seed(2))
    lags = {n: net.layers[n].lagrangian for n in net.layer_names}
    W1, W2 = (net.synapses[k].weight.detach() for k in ("W1", "W2"))
    assert W1.shape == (4, 5) and W2.shape == (3, 4)
    torch.testing.assert_close(net.energy(xs).detach(), chain_reference(xs, W1, W2, lags), rtol=0, atol=1e-12)
