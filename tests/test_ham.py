"""Mathematical facts about hopfield_lab.ham (float64): closed-form gradients, Lyapunov
property of the dynamics, batching, adiabatic elimination, errors."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield_lab import lagrangians as lg
from hopfield_lab.ham import (HAM, ChannelMixing, Dense, DivergenceError, Layer, NoEnergyError, ReducedHAM,
                              Synapse, TokenMixing, Trajectory, count_increases, integrate)

DT = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(DT)
    yield
    torch.set_default_dtype(old)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------
# networks used throughout (all Lagrangians convex unless said otherwise)
# ------------------------------------------------------------------------------------------
def vector_net(seed=0, tau_h=0.5):
    """v (tanh, with a recurrent synapse) - h1 (softmax) - h2 (ReLU)."""
    g = _gen(seed)
    return HAM(
        layers={
            "v": Layer(6, lg.Tanh(), tau=1.0),
            "h1": Layer(5, lg.Softmax(beta=2.0), tau=tau_h),
            "h2": Layer(4, "relu", tau=0.7),
        },
        synapses={
            "W1": Dense("v", "h1", generator=g),
            "W2": Dense("h1", "h2", generator=g, std=1.5),
            "R": Synapse("ij,j->i", "v", "v", generator=g, std=0.3),  # recurrent; made symmetric
        },
    )


def norm_net(seed=0):
    """v (spherical) - h (RePU n=3) - o (tanh), two dense synapses.

    (An identity layer next to a RePU n=3 layer would make E unbounded below.)"""
    g = _gen(seed)
    return HAM(
        layers={
            "v": Layer(5, lg.Spherical(gamma=2.0, delta=0.1 * torch.randn(5, generator=g), eps=1e-3), tau=0.5),
            "h": Layer(7, lg.RePU(n=3), tau=1.0),
            "o": Layer(3, "tanh", tau=2.0),
        },
        synapses={"W": Dense("v", "h", generator=g, std=1.0), "U": Dense("h", "o", generator=g)},
    )


def mixer_net(seed=0, hidden=("relu", "tanh"), tau_h=0.3, S=3, C=4, Ns=5, Nc=6):
    """Matrix-valued HAM of the paper's Secs. 5-6 (book chapter 6): X (S, C) with LayerNorm over the whole matrix."""
    g = _gen(seed)
    return HAM(
        layers={
            "x": Layer((S, C), lg.LayerNorm(gamma=1.3, delta=0.2 * torch.randn(S, C, generator=g), eps=1e-3,
                                            dim=(-2, -1)), tau=1.0),
            "hs": Layer((Ns, C), lg.get_lagrangian(hidden[0]), tau=tau_h),
            "hc": Layer((S, Nc), lg.get_lagrangian(hidden[1]), tau=tau_h),
        },
        synapses={"A": TokenMixing("x", "hs", generator=g), "B": ChannelMixing("x", "hc", generator=g)},
    )


def gelu_mixer(seed=0, **kw):
    return mixer_net(seed, hidden=("gelu", "gelu"), **kw)


NETS = {"vector": vector_net, "norm": norm_net, "mixer": mixer_net}


def rand_states(ham, batch=(3,), seed=1, std=1.0):
    return ham.init_states(batch=batch, kind="randn", std=std, generator=_gen(seed))


# ------------------------------------------------------------------------------------------
# energy and closed-form gradients
# ------------------------------------------------------------------------------------------
def test_energy_by_hand_vector_network():
    ham = vector_net()
    xs = rand_states(ham)
    g = ham.activations(xs)
    W1, W2, R = (ham.synapses[n].weight for n in ("W1", "W2", "R"))
    lay = ham.layers
    E = (
        sum((xs[n] * g[n]).sum(-1) - lay[n].lagrangian(xs[n]) for n in xs)
        - (g["h1"] * (g["v"] @ W1.T)).sum(-1)
        - (g["h2"] * (g["h1"] @ W2.T)).sum(-1)
        - 0.5 * (g["v"] * (g["v"] @ R.T)).sum(-1)
    )
    torch.testing.assert_close(ham.energy(xs), E)
    torch.testing.assert_close(ham(xs), E)
    terms = ham.energy_terms(xs)
    assert set(terms) == {"v", "h1", "h2", "W1", "W2", "R"}
    torch.testing.assert_close(sum(terms.values()), E)
    assert all(t.shape == (3,) for t in terms.values())


def _energy_of_x_and_g(ham, xs, gs):
    """E with x and g treated as independent variables (for the partial derivative dE/dg)."""
    E = 0.0
    for n, x in xs.items():
        lag = ham.layers[n]
        E = E + lag._per_sample(lag.lagrangian._sum(x * gs[n])) - lag.lagrangian_value(x)
    for s in ham.synapses.values():
        E = E + s.energy(gs[s.pre], gs[s.post])
    return E


@pytest.mark.parametrize("name", ["vector", "norm", "mixer", "gelu_mixer"])
def test_closed_form_dEdg_equals_autograd(name):
    ham = gelu_mixer() if name == "gelu_mixer" else NETS[name]()
    xs = {n: v.requires_grad_(True) for n, v in rand_states(ham).items()}
    closed = ham.dEdg({n: v.detach() for n, v in xs.items()})
    # (1) partial derivative with x and g independent: dE/dg = x - I
    gs = {n: ham.layers[n].activation(v).detach().requires_grad_(True) for n, v in xs.items()}
    dg = torch.autograd.grad(_energy_of_x_and_g(ham, {n: v.detach() for n, v in xs.items()}, gs).sum(),
                             list(gs.values()))
    for n, d in zip(gs, dg):
        torch.testing.assert_close(closed[n], d, rtol=1e-9, atol=1e-10)
    # (2) chain rule through the activations: dE/dx = (dg/dx)^T dE/dg  (dg/dx = Hessian of L)
    dx = torch.autograd.grad(ham.energy(xs).sum(), list(xs.values()))
    for n, d in zip(xs, dx):
        _, JTv = torch.autograd.functional.vjp(ham.layers[n].activation, xs[n].detach(), closed[n])
        torch.testing.assert_close(d, JTv, rtol=1e-8, atol=1e-10)


def test_flow_is_input_minus_x_over_tau():
    ham = vector_net()
    xs = rand_states(ham)
    I = ham.inputs(ham.activations(xs))
    f = ham.flow(xs)
    for n in xs:
        torch.testing.assert_close(f[n], (I[n] - xs[n]) / ham.layers[n].tau)
    fc = ham.flow(xs, clamped=["h1"])
    assert fc["h1"].abs().max() == 0 and torch.equal(fc["v"], f["v"])


def test_recurrent_synapse_is_symmetrised():
    ham = vector_net()
    R = ham.synapses["R"].weight
    assert not torch.allclose(R, R.T)  # drawn non-symmetric...
    g = ham.activations(rand_states(ham))
    only_R = HAM({"v": ham.layers["v"]}, {"R": ham.synapses["R"]})
    torch.testing.assert_close(only_R.inputs(g, targets=["v"])["v"], g["v"] @ (0.5 * (R + R.T)).T)


@pytest.mark.parametrize("untied", [False, True])
def test_fast_synapses_equal_generic_einsum(untied):
    """Dense/TokenMixing/ChannelMixing use matmuls; they must equal the einsum of their spec,
    also with untied feedback (V laid out like W^T: the weight's pre dims first)."""
    S, C, Ns, Nc, P = 3, 4, 5, 6, 7
    g = _gen(0)
    layers = {"x": Layer((S, C)), "hs": Layer((Ns, C)), "hc": Layer((S, Nc)), "p": Layer((2, P))}
    tied = HAM(layers, {"A": TokenMixing("x", "hs", generator=g), "B": ChannelMixing("x", "hc", generator=g),
                        "D": Dense("x", "p", generator=g)})
    V = _breaking(tied, seed=32) if untied else {}
    fast = tied.untie(V) if untied else tied
    slow = HAM(layers, {n: Synapse(s.spec, s.pre, s.post, weight=s.weight.detach(), breaking=V.get(n))
                        for n, s in tied.synapses.items()})
    xs = rand_states(fast, batch=(2, 3))
    for n in fast.synapses:
        a, b = fast.synapses[n], slow.synapses[n]
        torch.testing.assert_close(a.to_post(xs[a.pre]), b.to_post(xs[b.pre]))
        torch.testing.assert_close(a.to_pre(xs[a.post]), b.to_pre(xs[b.post]))
        torch.testing.assert_close(a.breaking_input(xs[a.post]), b.breaking_input(xs[b.post]))
        torch.testing.assert_close(a.to_pre(xs[a.post], tied=True), tied.synapses[n].to_pre(xs[a.post]))
    torch.testing.assert_close(fast.pseudo_energy(xs), slow.pseudo_energy(xs))
    if not untied:
        torch.testing.assert_close(fast.energy(xs), slow.energy(xs))
    assert fast.synapses["D"].spec == "ijpq,pq->ij"
    torch.testing.assert_close(fast.synapses["A"].to_post(xs["x"]), fast.synapses["A"].weight @ xs["x"])
    A = tied.synapses["A"].weight
    torch.testing.assert_close(fast.synapses["A"].feedback_weight(), A.T + V["A"] if untied else A.T)
    if untied:
        assert V["D"].shape == (S, C, 2, P)


# ------------------------------------------------------------------------------------------
# Lyapunov property of the dynamics
# ------------------------------------------------------------------------------------------
def _assert_non_increasing(E, what):
    dE = E[1:] - E[:-1]
    tol = 1e-11 * (1 + E.abs().max())
    assert (dE <= tol).all(), f"{what}: energy increased by up to {dE.max().item():.3g}"
    assert (E[-1] < E[0] - 1e-6).all(), f"{what}: energy did not decrease at all"


@settings(max_examples=25, deadline=None)
@given(net=st.sampled_from(sorted(NETS)), method=st.sampled_from(["euler", "rk4", "descent"]),
       dt=st.sampled_from([0.01, 0.03]), seed=st.integers(0, 10_000), std=st.sampled_from([0.5, 2.0]))
def test_energy_never_increases(net, method, dt, seed, std):
    ham = NETS[net](seed)
    xs = rand_states(ham, seed=seed + 1, std=std)
    traj = ham.run(xs, steps=40, dt=dt, method=method, record_energy=True, check_every=1)
    assert traj.energy.shape == (41, 3)
    _assert_non_increasing(traj.energy, f"{net}/{method}/dt={dt}")
    torch.testing.assert_close(traj.energy[-1], ham.energy(traj.x))


@pytest.mark.parametrize("method", ["euler", "rk4", "descent"])
def test_clamped_layer_stays_fixed_and_energy_decreases(method):
    ham = mixer_net(3)
    xs = rand_states(ham, seed=4)
    traj = ham.run(xs, steps=30, dt=0.02, method=method, clamped=["x"], record_energy=True)
    assert torch.equal(traj.x["x"], xs["x"])
    assert not torch.equal(traj.x["hs"], xs["hs"])
    _assert_non_increasing(traj.energy, f"clamped/{method}")


def test_fixed_point_of_descent_and_flow_agree():
    """A fixed point of the flow has dE/dg = 0 and is left alone by every method."""
    ham = norm_net(2)
    xs = rand_states(ham, seed=5)
    x_star = ham.run(xs, steps=300, dt=0.2, method="rk4").x
    for v in ham.dEdg(x_star).values():
        assert v.abs().max() < 1e-8
    for method in ("euler", "descent"):
        x2 = ham.step(x_star, 0.1, method)
        for n in x2:
            torch.testing.assert_close(x2[n], x_star[n], atol=1e-9, rtol=0)


def test_rk4_is_fourth_order_and_euler_first_order():
    g = _gen(1)  # smooth Lagrangians only (a ReLU kink would lower the order)
    ham = HAM({"v": Layer(6, "tanh"), "h": Layer(5, lg.Softmax(beta=2.0), tau=0.5)},
              {"W": Dense("v", "h", generator=g, std=2.0)})
    xs = rand_states(ham, seed=2)
    ref = ham.run(xs, steps=800, dt=1e-3, method="rk4").x["v"]

    def err(method, n):
        return (ham.run(xs, steps=n, dt=0.8 / n, method=method).x["v"] - ref).abs().max().item()

    e1, e2 = err("euler", 40), err("euler", 80)
    r1, r2 = err("rk4", 10), err("rk4", 20)
    assert 1.6 < e1 / e2 < 2.5
    assert 11 < r1 / r2 < 22


@pytest.mark.parametrize("method", ["euler", "rk4", "descent"])
def test_batched_equals_unbatched(method):
    ham = mixer_net(5)
    xs = rand_states(ham, batch=(2, 3), seed=6)
    traj = ham.run(xs, steps=15, dt=0.05, method=method, record_energy=True)
    assert traj.energy.shape == (16, 2, 3)
    for i in range(2):
        for j in range(3):
            one = ham.run({n: v[i, j] for n, v in xs.items()}, steps=15, dt=0.05, method=method,
                          record_energy=True)
            assert one.energy.shape == (16,)
            torch.testing.assert_close(one.energy, traj.energy[:, i, j])
            for n in xs:
                torch.testing.assert_close(one.x[n], traj.x[n][i, j])


def test_trajectory_recording():
    ham = norm_net()
    xs = rand_states(ham)
    tr = ham.run(xs, steps=10, dt=0.1, record_energy=True, record_states=True, record_every=4)
    assert isinstance(tr, Trajectory) and tr.steps == 10
    torch.testing.assert_close(tr.t, torch.tensor([0.0, 0.4, 0.8, 1.0]))
    assert tr.energy.shape == (4, 3) and tr.states["h"].shape == (4, 3, 7)
    torch.testing.assert_close(tr.states["v"][0], xs["v"])
    torch.testing.assert_close(tr.states["v"][-1], tr.x["v"])
    plain = ham.run(xs, steps=10, dt=0.1)
    assert plain.energy is None and plain.states is None
    torch.testing.assert_close(plain.t, torch.tensor([0.0, 1.0]))
    d = ham.descend(xs, steps=5, alpha=0.1, record_energy=True)
    torch.testing.assert_close(d.t, torch.arange(6.0))
    zero = ham.run(xs, steps=0, dt=0.1)                     # no step: the initial state, at t = 0
    assert zero.steps == 0 and zero.x.keys() == xs.keys()
    for name in xs:
        torch.testing.assert_close(zero.x[name], xs[name])
    assert float(zero.t[-1]) == 0.0                        # it ends where it starts


def test_run_grad_flag():
    ham = mixer_net()
    xs = rand_states(ham)
    assert not ham.run(xs, steps=3, dt=0.1, method="descent").x["x"].requires_grad
    out = ham.descend(xs, steps=3, alpha=0.1, grad=True).x["x"]
    out.pow(2).sum().backward()
    assert ham.synapses["A"].weight.grad is not None and ham.layers["x"].lagrangian.gamma.grad is None


# ------------------------------------------------------------------------------------------
# adiabatic elimination
# ------------------------------------------------------------------------------------------
def test_reduced_mixer_is_the_symmixer():
    """Eliminating both GELU layers gives the SymMixer flow and Lyapunov function (paper Secs. 5-6, book ch. 6)."""
    ham = gelu_mixer(7)
    red = ham.eliminate("hs", "hc")
    assert isinstance(red, ReducedHAM) and red.layer_names == ("x",)
    X = rand_states(red, seed=8)
    assert set(X) == {"x"}
    x = X["x"]
    lag = ham.layers["x"].lagrangian
    G = lag.activation(x)
    A, B = ham.synapses["A"].weight, ham.synapses["B"].weight
    phi = lg.phi_gelu
    E = lag.legendre(x) - phi(A @ G).sum((-2, -1)) - phi(G @ B.T).sum((-2, -1))
    torch.testing.assert_close(red.energy(X), E)
    flow = A.T @ torch.nn.functional.gelu(A @ G) + torch.nn.functional.gelu(G @ B.T) @ B - x
    torch.testing.assert_close(red.flow(X)["x"], flow / ham.layers["x"].tau)
    # the reduced energy equals the full energy with the hidden layers at their fixed points
    full = red.complete(X)
    torch.testing.assert_close(full["hs"], A @ G)
    torch.testing.assert_close(ham.energy(full), red.energy(X))
    torch.testing.assert_close(ham.dEdg(full)["x"], red.dEdg(X)["x"])
    for h in ("hs", "hc"):
        assert ham.dEdg(full)[h].abs().max() < 1e-12  # the hidden layers are at rest


def test_modern_hopfield_is_one_euler_step_of_the_reduced_network():
    """Visible identity layer + eliminated softmax memory layer (W = X^T): one Euler step with
    dt = tau gives the modern Hopfield update X softmax(beta X^T xi), i.e. attention."""
    g = _gen(21)
    N, M, beta = 8, 5, 4.0
    X = torch.randn(N, M, generator=g)  # M stored patterns as columns
    ham = HAM({"v": Layer(N, "identity", tau=1.0), "m": Layer(M, lg.Softmax(beta=beta), tau=1e-3)},
              {"W": Dense("v", "m", weight=X.T)})
    red = ham.eliminate("m")
    xi = torch.randn(3, N, generator=g)
    new = red.step({"v": xi}, dt=1.0, method="euler")["v"]
    torch.testing.assert_close(new, torch.softmax(beta * xi @ X, -1) @ X.T)
    # reduced energy: 1/2 |xi|^2 - beta^-1 logsumexp(beta X^T xi)
    torch.testing.assert_close(red.energy({"v": xi}),
                               0.5 * (xi * xi).sum(-1) - torch.logsumexp(beta * xi @ X, -1) / beta)


def test_reduced_dEdg_equals_autograd():
    ham = vector_net(3)
    red = ham.eliminate("h1")  # v and h2 kept; h1 sits between them
    X = {n: v.requires_grad_(True) for n, v in rand_states(red, seed=9).items()}
    dx = torch.autograd.grad(red.energy(X).sum(), list(X.values()))
    closed = red.dEdg({n: v.detach() for n, v in X.items()})
    for n, d in zip(X, dx):
        _, JTv = torch.autograd.functional.vjp(ham.layers[n].activation, X[n].detach(), closed[n])
        torch.testing.assert_close(d, JTv, rtol=1e-8, atol=1e-10)


def test_reduced_gelu_mixer_energy_never_increases():
    """Only the visible Lagrangian needs to be convex: GELU hidden layers are fine in the limit."""
    red = gelu_mixer(11, S=4, C=8, Ns=20, Nc=32).eliminate("hs", "hc")
    X = rand_states(red, batch=(4,), seed=12)
    for method in ("euler", "rk4"):
        tr = red.run(X, steps=200, dt=0.02, method=method, record_energy=True)
        _assert_non_increasing(tr.energy, f"reduced/{method}")


@pytest.mark.parametrize("make,hidden", [(vector_net, "h1"), (mixer_net, "hs")])
def test_fast_hidden_layer_follows_reduced_flow(make, hidden):
    """With tau_h -> 0 the full network's kept layers follow the reduced flow, error O(tau_h)."""
    T, errs = 0.3, []
    for tau in (2e-2, 2e-3):
        ham = make(4, tau_h=tau)
        red = ham.eliminate(hidden)
        X = rand_states(red, seed=13)
        xs = red.complete(X)  # start the hidden layer on its slow manifold
        dt = tau
        steps = round(T / dt)
        full = ham.run(xs, steps=steps, dt=dt, method="rk4").x
        reduced = red.run(X, steps=steps, dt=dt, method="rk4").x
        errs.append(max((full[n] - reduced[n]).abs().max().item() for n in red.layer_names))
        drift = max((reduced[n] - X[n]).abs().max().item() for n in red.layer_names)
        # the energies agree along the way too (the hidden layer stays on its manifold)
        torch.testing.assert_close(ham.energy(full), red.energy({n: full[n] for n in red.layer_names}),
                                   rtol=0, atol=tau)
    assert drift > 0.05  # the states really moved
    assert errs[1] < 0.2 * errs[0], errs
    assert errs[1] < 0.01 * drift, (errs, drift)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
def test_shape_errors_name_synapse_layer_and_expected_shape():
    layers = {"x": Layer((3, 4)), "hs": Layer((5, 4)), "hc": Layer((3, 6)), "bad": Layer((5, 9))}
    with pytest.raises(ValueError, match=r"synapse 'A'.*weight has shape \(5, 4\), expected \(5, 3\)"):
        HAM(layers, {"A": TokenMixing("x", "hs", weight=torch.zeros(5, 4))})
    with pytest.raises(ValueError, match=r"synapse 'A'.*index 'c' has size 4 in layer 'x'.*but 9 in layer 'bad'"):
        HAM(layers, {"A": TokenMixing("x", "bad")})
    with pytest.raises(ValueError, match=r"synapse 'D'.*pre part 'j' has 1 dims but layer 'x' has shape \(3, 4\)"):
        HAM(layers, {"D": Synapse("ij,j->i", "x", "hs")})
    with pytest.raises(ValueError, match=r"synapse 'W'.*expected \(3, 6, 3, 4\)"):
        HAM(layers, {"W": Dense("x", "hc", weight=torch.zeros(18, 12))})
    with pytest.raises(KeyError, match="not a layer"):
        HAM(layers, {"A": TokenMixing("x", "nope")})
    with pytest.raises(ValueError, match="both a layer and a synapse"):
        HAM(layers, {"x": TokenMixing("x", "hs")})
    with pytest.raises(ValueError, match="form"):
        Synapse("ij->i", "x", "x")
    with pytest.raises(ValueError, match="appears in neither"):
        Synapse("ijk,j->i", "x", "x")
    with pytest.raises(ValueError, match="acts over 2 trailing dims"):
        Layer(5, lg.LayerNorm(dim=(-2, -1)))


def test_state_errors():
    ham = mixer_net()
    xs = rand_states(ham)
    with pytest.raises(ValueError, match=r"layer 'hs' has shape \(3, 4, 5\); expected \(\*batch, 5, 4\)"):
        ham.energy({**xs, "hs": xs["hs"].transpose(-1, -2)})
    with pytest.raises(KeyError, match="missing \\['hc'\\]"):
        ham.energy({n: v for n, v in xs.items() if n != "hc"})
    with pytest.raises(ValueError, match="batch shapes differ"):
        ham.energy({**xs, "hs": xs["hs"][:2]})
    with pytest.raises(KeyError, match="clamped layer 'q'"):
        ham.run(xs, steps=2, dt=0.1, clamped=["q"])


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_non_positive_tau_and_step(bad):
    with pytest.raises(ValueError, match="tau"):
        Layer(3, tau=bad)
    ham = norm_net()
    xs = rand_states(ham)
    with pytest.raises(ValueError, match="step size"):
        ham.run(xs, steps=2, dt=bad)
    with pytest.raises(ValueError, match="step size"):
        ham.step(xs, bad, "descent")


def test_other_argument_errors():
    ham = norm_net()
    xs = rand_states(ham)
    with pytest.raises(ValueError, match="Unknown method 'leapfrog'"):
        ham.run(xs, steps=2, dt=0.1, method="leapfrog")
    with pytest.raises(ValueError, match="steps"):
        ham.run(xs, steps=-1, dt=0.1)
    with pytest.raises(ValueError, match="synapse 'W' connects them"):
        ham.eliminate("v", "h")
    with pytest.raises(KeyError, match="not a layer"):
        ham.eliminate("q")
    with pytest.raises(ValueError, match="recurrent synapse 'R'"):
        vector_net().eliminate("v")


def test_divergence_names_layer_and_step():
    # identity layers with strong coupling: the linear dynamics are unstable, and Euler with a
    # large step makes it explode quickly
    g = _gen(0)
    ham = HAM({"a": Layer(4, "identity"), "b": Layer(4, "identity", tau=0.1)},
              {"W": Dense("a", "b", generator=g, std=3.0)})
    xs = rand_states(ham)
    with pytest.raises(DivergenceError, match=r"layer '[ab]' reached .* at step \d+ \(dt=0.5\).*smaller step"):
        ham.run(xs, steps=10_000, dt=0.5, check_every=1)
    with pytest.raises(DivergenceError, match=r"between steps \d+ and \d+"):
        ham.run(xs, steps=10_000, dt=0.5, check_every=7)
    with pytest.raises(DivergenceError, match="layer 'b'.*NaN"):
        ham.run({**xs, "b": torch.full_like(xs["b"], float("nan"))}, steps=3, dt=0.01)
    assert issubclass(DivergenceError, RuntimeError)


# ------------------------------------------------------------------------------------------
# devices and dtypes
# ------------------------------------------------------------------------------------------
def test_float32_module_to():
    ham = mixer_net().to(torch.float32)
    xs = ham.init_states(batch=2, kind="randn", generator=_gen(0))
    assert xs["x"].dtype == torch.float32
    assert ham.run(xs, steps=5, dt=0.05, record_energy=True).energy.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    ham = mixer_net(9)
    xs = rand_states(ham, seed=10)
    cpu = ham.run(xs, steps=50, dt=0.02, method="rk4", record_energy=True)
    gham = mixer_net(9).cuda()
    gxs = {n: v.cuda() for n, v in xs.items()}
    gpu = gham.run(gxs, steps=50, dt=0.02, method="rk4", record_energy=True)
    assert gpu.x["x"].is_cuda and gpu.energy.is_cuda
    torch.testing.assert_close(gpu.energy.cpu(), cpu.energy)
    red = gham.eliminate("hs", "hc")
    assert red.energy({"x": gxs["x"]}).is_cuda


# ------------------------------------------------------------------------------------------
# untied feedback (symmetry breaking)
# ------------------------------------------------------------------------------------------
def _breaking(ham, seed=30, scale=0.7, names=None):
    """A random V per synapse (or for ``names``), laid out like the feedback weight (W^T for a matrix)."""
    g = _gen(seed)
    names = ham.synapses if names is None else names
    return {n: scale * torch.randn(ham.synapses[n].feedback_weight().shape, generator=g) for n in names}


def test_untied_flow_is_the_formula():
    ham = vector_net(2)
    V = _breaking(ham)
    assert V["W1"].shape == (6, 5) and V["W2"].shape == (5, 4) and V["R"].shape == (6, 6)
    un = ham.untie(V)
    xs = rand_states(un, seed=3)
    g = un.activations(xs)
    W1, W2, R = (ham.synapses[n].weight for n in ("W1", "W2", "R"))
    # pre layers receive (W^T + V) g_post; a recurrent synapse half of (R + R^T + V) g
    I = {
        "v": g["h1"] @ (W1.T + V["W1"]).T + g["v"] @ (0.5 * (R + R.T + V["R"])).T,
        "h1": g["v"] @ W1.T + g["h2"] @ (W2.T + V["W2"]).T,
        "h2": g["h1"] @ W2.T,
    }
    f = un.flow(xs)
    for n in xs:
        torch.testing.assert_close(f[n], (I[n] - xs[n]) / un.layers[n].tau, rtol=0, atol=1e-12)
        torch.testing.assert_close(un.dEdg(xs)[n], xs[n] - I[n], rtol=0, atol=1e-12)
    # the tied part is the original network, to the last bit
    for n, v in un.inputs(g, tied=True).items():
        assert torch.equal(v, ham.inputs(g)[n])


def test_untied_mixer_flow_is_the_formula():
    ham = gelu_mixer(8)
    V = _breaking(ham, seed=31)
    assert V["A"].shape == (3, 5) and V["B"].shape == (4, 6)  # (S, Ns), (C, Nc): AsymMlp's layout
    red = ham.untie(V).eliminate("hs", "hc")
    X = rand_states(red, seed=9)
    x = X["x"]
    G = ham.layers["x"].activation(x)
    A, B = ham.synapses["A"].weight, ham.synapses["B"].weight
    gelu = torch.nn.functional.gelu
    M = (A.T + V["A"]) @ gelu(A @ G) + gelu(G @ B.T) @ (B + V["B"].T)
    torch.testing.assert_close(red.flow(X)["x"], (M - x) / ham.layers["x"].tau, rtol=0, atol=1e-12)
    torch.testing.assert_close(red.inputs({"x": G})["x"], M, rtol=0, atol=1e-12)
    # the pseudo-energy of the paper: E + 1/2 <G, V_s GELU(A G)> + 1/2 <G, GELU(G B^T) V_c^T>
    E = ham.eliminate("hs", "hc").energy(X)
    P = E + 0.5 * (G * (V["A"] @ gelu(A @ G))).sum((-2, -1)) + 0.5 * (G * (gelu(G @ B.T) @ V["B"].T)).sum((-2, -1))
    torch.testing.assert_close(red.pseudo_energy(X), P, rtol=0, atol=1e-12)
    torch.testing.assert_close(red.tied_energy(X), E, rtol=0, atol=0)


def test_untied_network_has_no_energy_but_a_tied_and_a_pseudo_energy():
    ham = vector_net(4)
    V = _breaking(ham, names=["W1", "R"])
    un = ham.untie(V)
    xs = rand_states(un, seed=5)
    assert ham.is_tied and not un.is_tied and un.untied_synapses == ("W1", "R")
    for call in (lambda: un.energy(xs), lambda: un(xs), lambda: un.energy_terms(xs),
                 lambda: un.run(xs, steps=2, dt=0.01, record_energy=True),
                 lambda: un.eliminate("h2").energy({n: xs[n] for n in ("v", "h1")})):
        with pytest.raises(NoEnergyError, match=r"synapse\(s\) \['W1', 'R'\] have untied feedback.*tied_energy"):
            call()
    assert issubclass(NoEnergyError, TypeError)
    # the tied part's energy and the pseudo-energy, by hand
    g = un.activations(xs)
    torch.testing.assert_close(un.tied_energy(xs), ham.energy(xs), rtol=0, atol=0)
    extra = 0.5 * (g["v"] * (g["h1"] @ V["W1"].T)).sum(-1) + 0.5 * (g["v"] * (0.5 * g["v"] @ V["R"].T)).sum(-1)
    torch.testing.assert_close(un.pseudo_energy(xs), ham.energy(xs) + extra, rtol=0, atol=1e-12)
    torch.testing.assert_close(ham.pseudo_energy(xs), ham.energy(xs), rtol=0, atol=0)
    # the flow and the integrator work; energies are recorded through a function
    tr = un.run(xs, steps=20, dt=0.05, method="rk4", record_energy=un.pseudo_energy, record_states=True)
    assert tr.energy.shape == (21, 3)
    torch.testing.assert_close(tr.energy[-1], un.pseudo_energy(tr.x))
    # untie shares the weights and copies V; tied() gives the tied network back
    assert un.synapses["W2"] is ham.synapses["W2"] and un.synapses["W1"].weight is ham.synapses["W1"].weight
    V["W1"].zero_()
    assert un.synapses["W1"].breaking.abs().max() > 0
    torch.testing.assert_close(un.tied().energy(xs), ham.energy(xs), rtol=0, atol=0)
    red = un.eliminate("h1")
    assert red.tied().is_tied and not red.is_tied
    with pytest.raises(NoEnergyError, match="eliminated layer 'h1' receives the untied feedback"):
        un.untie(_breaking(ham, names=["W2"])).eliminate("h1").pseudo_energy({n: xs[n] for n in ("v", "h2")})


def test_untie_errors_name_the_synapse_and_the_layout():
    ham = vector_net()
    with pytest.raises(ValueError, match=r"breaking names synapse\(s\) \['W9'\], which are not in the network"):
        ham.untie({"W9": torch.zeros(6, 5)})
    with pytest.raises(ValueError, match=r"synapse 'W1'.*breaking part V has shape \(5, 6\), expected \(6, 5\)"
                                         r".*W.T for a matrix"):
        ham.untie({"W1": torch.zeros(5, 6)})


def _reference_run(ham, xs, steps, dt, method):
    """Euler / RK4 / descent written out on the public one-step maths (the pre-refactor
    stepping of HAM.run), recording states and energies."""
    traj, E = [xs], [ham.energy(xs)]
    for _ in range(steps):
        if method == "descent":
            d = ham.dEdg(xs)
            xs = {n: x - dt * d[n] for n, x in xs.items()}
        elif method == "euler":
            f = ham.flow(xs)
            xs = {n: x + dt * f[n] for n, x in xs.items()}
        else:
            k1 = ham.flow(xs)
            k2 = ham.flow({n: x + 0.5 * dt * k1[n] for n, x in xs.items()})
            k3 = ham.flow({n: x + 0.5 * dt * k2[n] for n, x in xs.items()})
            k4 = ham.flow({n: x + dt * k3[n] for n, x in xs.items()})
            xs = {n: x + (dt / 6.0) * (k1[n] + 2.0 * k2[n] + 2.0 * k3[n] + k4[n]) for n, x in xs.items()}
        traj.append(xs)
        E.append(ham.energy(xs))
    return {n: torch.stack([t[n] for t in traj]) for n in xs}, torch.stack(E)


@pytest.mark.parametrize("method", ["euler", "rk4", "descent"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_tied_run_equals_the_reference_stepping(net, method):
    ham = NETS[net](6)
    xs = rand_states(ham, seed=7)
    with torch.no_grad():
        states, E = _reference_run(ham, xs, 30, 0.03, method)
        tr = ham.run(xs, steps=30, dt=0.03, method=method, record_energy=True, record_states=True)
    torch.testing.assert_close(tr.energy, E, rtol=0, atol=1e-12)
    for n in xs:
        torch.testing.assert_close(tr.states[n], states[n], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# the integrator, the counter and ensembles of networks
# ------------------------------------------------------------------------------------------
def test_integrate_any_flow_on_dict_states():
    x0 = {"a": torch.ones(3), "b": torch.full((2, 2), 2.0)}
    decay = lambda xs: {"a": -xs["a"], "b": -2.0 * xs["b"]}  # noqa: E731
    tr = integrate(decay, x0, steps=100, dt=0.01, method="rk4", record_states=True, record_every=25)
    torch.testing.assert_close(tr.t, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(tr.x["a"], torch.full((3,), torch.e ** -1.0), rtol=1e-9, atol=0)
    torch.testing.assert_close(tr.x["b"], torch.full((2, 2), 2 * torch.e ** -2.0), rtol=1e-8, atol=0)  # RK4: O(dt^4)
    assert tr.states["b"].shape == (5, 2, 2) and tr.energy is None
    errs = [abs(float(integrate(decay, x0, steps=n, dt=1.0 / n, method="euler").x["a"][0]) - torch.e ** -1.0)
            for n in (50, 100)]
    assert errs[0] / errs[1] == pytest.approx(2.0, rel=0.05)
    half = integrate(decay, x0, steps=4, dt=0.5, method="euler", energy=lambda xs: xs["a"].sum(-1), time_step=1.0)
    torch.testing.assert_close(half.t, torch.arange(5.0))
    torch.testing.assert_close(half.energy, 3 * 0.5 ** torch.arange(5.0))
    with pytest.raises(ValueError, match="Unknown integration method 'descent'"):
        integrate(decay, x0, steps=1, dt=0.1, method="descent")
    with pytest.raises(DivergenceError, match=r"grow dynamics diverged: layer 'a' reached inf at step \d+"):
        integrate(lambda xs: {"a": xs["a"] ** 2}, {"a": torch.ones(1)}, steps=1000, dt=0.5, method="euler",
                  max_abs=None, check_every=1, label="grow")


def test_count_increases_rule():
    eps = torch.finfo(torch.float64).eps
    base = torch.tensor([4.0, 3.0, 2.0, 2.0, 1.0], dtype=torch.float64)
    up = torch.zeros(5, 4, dtype=torch.float64)
    for b, ulps in enumerate((0, 3000, 5000, 1e6)):  # a rise of so many ulps of max|E| = 4 at step 3
        up[:, b] = base
        up[3, b] = 2.0 + ulps * eps * 4.0
    assert count_increases(up).tolist() == [0, 0, 1, 1]
    assert count_increases(up, rtol=0.0).tolist() == [0, 1, 1, 1]
    # scale-covariant (exact for powers of two) and batched over trailing dims
    assert count_increases(2.0 ** 40 * up).tolist() == [0, 0, 1, 1]
    assert count_increases(2.0 ** -40 * up).tolist() == [0, 0, 1, 1]
    grid = up.reshape(5, 2, 2)
    c = count_increases(grid)
    assert c.shape == (2, 2) and c.dtype == torch.int64 and c.tolist() == [[0, 0], [1, 1]]
    # float32 gets its own epsilon: a rise of 1e-6 is round-off there, not in float64
    e = torch.tensor([1.0, 0.5, 0.5 + 1e-6], dtype=torch.float32)
    assert int(count_increases(e)) == 0 and int(count_increases(e.double())) == 1
    for bad, err in ((torch.tensor(1.0), ValueError), (torch.arange(4), TypeError)):
        with pytest.raises(err, match="count_increases"):
            count_increases(bad)
    with pytest.raises(ValueError, match="rtol"):
        count_increases(up, rtol=-1.0)


def test_count_ignores_summation_noise_of_a_descending_trace():
    """A converged descent: E is flat to round-off at the end. Noise of a few hundred ulps (far
    more than summation order produces) must not count; the same trace tilted upwards must."""
    ham = norm_net(3)
    tr = ham.run(rand_states(ham, seed=4), steps=400, dt=0.1, method="rk4", record_energy=True)
    E = tr.energy
    assert int(count_increases(E).sum()) == 0
    scale = E.abs().amax(0)
    noise = torch.randn(E.shape, generator=_gen(5)) * 256 * torch.finfo(E.dtype).eps * scale
    assert int(count_increases(E + noise).sum()) == 0
    tilt = torch.arange(E.shape[0], dtype=E.dtype)[:, None] * 1e-9 * scale
    assert int(count_increases(E + tilt).sum()) > 0


def _ensemble_net(n, breaking):
    g = _gen(40)
    S, C, Ns, Nc, P = 3, 4, 5, 6, 2
    layers = {"x": Layer((S, C), lg.LayerNorm(eps=1e-3, dim=(-2, -1))), "hs": Layer((Ns, C), "gelu", tau=0.5),
              "hc": Layer((S, Nc), "tanh", tau=0.4), "p": Layer(P, "tanh", tau=0.7)}
    shapes = {"A": (Ns, S), "B": (Nc, C), "D": (P, S, C)}
    fb = {"A": (S, Ns), "B": (C, Nc), "D": (S, C, P)}
    W = {k: torch.randn((n, 1) + v, generator=g) / 2 for k, v in shapes.items()}
    V = {k: torch.randn((n, 1) + v, generator=g) / 2 for k, v in fb.items()} if breaking else {}
    kinds = {"A": TokenMixing, "B": ChannelMixing, "D": Dense}

    def build(idx):
        pick = (lambda t: t) if idx is None else (lambda t: t[idx, 0])
        return HAM(layers, {k: kinds[k]("x", {"A": "hs", "B": "hc", "D": "p"}[k], weight=pick(W[k]),
                                        breaking=pick(V[k]) if breaking else None) for k in kinds})
    return build


@pytest.mark.parametrize("breaking", [False, True])
def test_ensemble_weights_equal_one_network_per_member(breaking):
    n, b = 3, 2
    build = _ensemble_net(n, breaking)
    ens = build(None)
    xs = ens.init_states(batch=(n, b), kind="randn", generator=_gen(41))
    f = ens.flow(xs)
    P = ens.pseudo_energy(xs)
    red = ens.eliminate("hs", "hc")
    fr = red.flow({n_: xs[n_] for n_ in ("x", "p")})
    for i in range(n):
        one = build(i)
        xi = {k: v[i] for k, v in xs.items()}
        for k, v in one.flow(xi).items():
            torch.testing.assert_close(f[k][i], v, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(P[i], one.pseudo_energy(xi), rtol=1e-12, atol=1e-12)
        for k, v in one.eliminate("hs", "hc").flow({k: xi[k] for k in ("x", "p")}).items():
            torch.testing.assert_close(fr[k][i], v, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"ensemble dims \(3, 1\).*batch shape \(2,\)"):
        ens.flow({k: v[0] for k, v in xs.items()})
