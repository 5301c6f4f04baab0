"""Tests of hopfield_lab.odes: the continuous parallelized Mixer and its (pseudo-)energy."""
import math

import pytest
import torch
import torch.nn.functional as F

from hopfield_lab import mixer as mx
from hopfield_lab import odes
from hopfield_lab.ham import NoEnergyError, ReducedHAM
from hopfield_lab.odes import MixerODE, count_increases, integrate, initial_states, large_system, small_system


def test_phi_gelu_is_the_gelu_lagrangian():
    x = torch.linspace(-6, 6, 241, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(odes.phi_gelu(x).sum(), x)
    torch.testing.assert_close(g, F.gelu(x.detach()), atol=1e-12, rtol=1e-10)
    assert float(odes.phi_gelu(torch.zeros((), dtype=torch.float64))) == 0.0


def test_sample_sphere_radius_per_matrix():
    g = torch.Generator().manual_seed(0)
    w = odes.sample_sphere((5, 1, 3, 4), 2.5, g)
    torch.testing.assert_close(torch.linalg.matrix_norm(w), torch.full((5, 1), 2.5, dtype=torch.float64))
    assert not odes.sample_sphere((3, 4), 0.0, g).any()
    with pytest.raises(ValueError, match="radius"):
        odes.sample_sphere((2, 2), -1.0)


@pytest.mark.parametrize("pooled", [False, True])
def test_shapes(pooled):
    s = MixerODE.random(4, 8, 20, 160, breaking=(1.5, 4.0), pooled=pooled, seed=1)
    x = initial_states(s, batch=7)
    assert x.shape == (7, 4, 8) and x.dtype == torch.float64
    assert s.velocity(x).shape == (7, 4, 8)
    assert s.energy(x).shape == (7,) and s.pseudo_energy(x).shape == (7,)
    t, xs = integrate(s, x, t_end=0.1, dt=0.01, save_every=2)
    assert xs.shape == (6, 7, 4, 8) and t.shape == (6,)
    torch.testing.assert_close(t[-1], torch.tensor(0.1, dtype=torch.float64))
    ens = MixerODE.random(2, 1, 3, 2, n_systems=5, seed=2, pooled=pooled)
    x0 = initial_states(ens, batch=3)
    assert x0.shape == (5, 3, 2, 1)
    assert ens.velocity(x0).shape == (5, 3, 2, 1) and ens.energy(x0).shape == (5, 3)
    # an ensemble member behaves like the same weights used alone
    one = MixerODE(ens.A[2, 0], ens.B[2, 0], ens.V_s[2, 0], ens.V_c[2, 0], pooled=pooled)
    torch.testing.assert_close(one.velocity(x0[2]), ens.velocity(x0)[2])


def test_bad_shapes_raise_clear_errors():
    s = small_system()
    with pytest.raises(ValueError, match=r"\(\.\.\., S, C\)"):
        s.velocity(torch.zeros(3, 4, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="V_s"):
        MixerODE(s.A, s.B, torch.zeros(3, 3), s.V_c)
    with pytest.raises(ValueError, match="method"):
        integrate(s, torch.zeros(1, 2, 1), method="rk45")
    with pytest.raises(ValueError, match="S=2, C=1"):
        odes.energy_landscape(large_system(), torch.zeros(3), torch.zeros(3))


def test_layer_norm_jacobian_closed_form():
    s = large_system(seed=3)
    x = initial_states(s, batch=4, mean=0.3, std=1.7, seed=5)
    v = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(9))
    _, jv = torch.autograd.functional.jvp(s.layer_norm, x, v)
    torch.testing.assert_close(s.ln_jvp(x, v), jv, atol=1e-12, rtol=1e-9)
    # symmetric and positive semi-definite; shift direction is a zero mode
    w = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close((w * s.ln_jvp(x, v)).sum((-2, -1)), (v * s.ln_jvp(x, w)).sum((-2, -1)))
    assert ((v * s.ln_jvp(x, v)).sum((-2, -1)) >= 0).all()
    assert s.ln_jvp(x, torch.ones_like(x)).abs().max() < 1e-12
    # LN is the gradient of L_v = D sqrt(Var + eps)
    xg = x.clone().requires_grad_(True)
    D = 32
    Lv = D * torch.sqrt(xg.var(dim=(-2, -1), unbiased=False) + s.eps)
    (gL,) = torch.autograd.grad(Lv.sum(), xg)
    torch.testing.assert_close(gL, s.layer_norm(x))


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("asym", [False, True])
def test_energy_gradient_closed_form_matches_autograd(pooled, asym):
    s = MixerODE.random(4, 8, 20, 160, breaking=(1.5, 4.0) if asym else (0.0, 0.0), pooled=pooled, seed=4)
    x = initial_states(s, batch=5, mean=1.0, std=2.5, seed=6).requires_grad_(True)
    (g,) = torch.autograd.grad(s.energy(x).sum(), x)
    torch.testing.assert_close(s.energy_grad(x.detach()), g, atol=1e-10, rtol=1e-8)
    # energy is invariant under a common shift of all entries (LN zero mode)
    torch.testing.assert_close(s.energy(x.detach() + 3.0), s.energy(x.detach()))
    if not asym:
        # gradient structure: dE/dX = -J dX/dt, hence dE/dt = -<dX/dt, J dX/dt> <= 0
        v = s.velocity(x.detach())
        torch.testing.assert_close(g, -s.ln_jvp(x.detach(), v), atol=1e-10, rtol=1e-8)
        rate = s.energy_rate(x.detach())
        torch.testing.assert_close(rate, -(v * s.ln_jvp(x.detach(), v)).sum((-2, -1)))
        assert (rate <= 0).all() and (rate < 0).any()
        # and the rate is the true time derivative of E along the flow
        _, dE = torch.autograd.functional.jvp(s.energy, x.detach(), v)
        torch.testing.assert_close(rate, dE, atol=1e-10, rtol=1e-8)


def test_pseudo_energy_reduces_to_energy_without_breaking():
    s = large_system(asymmetric=True, seed=2)
    x = initial_states(s, batch=3, std=2.0)
    sym = s.with_breaking_scale(0.0)
    assert sym.is_symmetric and not s.is_symmetric
    torch.testing.assert_close(sym.pseudo_energy(x), sym.energy(x))
    torch.testing.assert_close(sym.velocity(x), s.symmetric_part().velocity(x))
    assert not torch.allclose(s.pseudo_energy(x), s.energy(x))
    assert s.breaking_norms == pytest.approx((1.5, 4.0))


def test_integrators_converge_at_their_order():
    f = lambda x: -x  # noqa: E731
    x0 = torch.ones(3, dtype=torch.float64)
    exact = math.exp(-1.0)
    errs = {m: [abs(float(integrate(f, x0, 1.0, dt, m)[1][-1, 0]) - exact) for dt in (0.1, 0.05)]
            for m in ("euler", "rk4")}
    assert errs["euler"][0] / errs["euler"][1] == pytest.approx(2.0, rel=0.1)
    assert errs["rk4"][0] / errs["rk4"][1] == pytest.approx(16.0, rel=0.1)


@pytest.mark.parametrize("pooled", [False, True])
def test_symmetric_flow_never_increases_energy(pooled):
    for s, x0 in [
        (small_system(seed=0, pooled=pooled), None),
        (large_system(seed=0, pooled=pooled), None),
    ]:
        x0 = initial_states(s, batch=10, mean=0.5 if s.shape == (2, 1) else 1.0,
                            std=0.5 if s.shape == (2, 1) else 2.5, seed=1)
        _, xs = integrate(s, x0, t_end=10.0, dt=2e-3, method="euler", save_every=1)
        E = s.energy(xs)
        assert int(count_increases(E).sum()) == 0
        assert (E[-1] < E[0]).all()


def test_breaking_part_makes_pseudo_energy_increase():
    s = large_system(asymmetric=True, seed=0)
    x0 = initial_states(s, batch=10, mean=1.0, std=2.5, seed=1)
    _, xs = integrate(s, x0, t_end=10.0, dt=1e-2, method="rk4")
    assert int(count_increases(s.pseudo_energy(xs)).sum()) > 0
    assert int(count_increases(s.energy(xs)).sum()) > 0
    # the same weights without the breaking part descend
    sym = s.symmetric_part()
    _, ys = integrate(sym, x0, t_end=10.0, dt=1e-2, method="rk4")
    assert int(count_increases(sym.energy(ys)).sum()) == 0


def test_energy_landscape_grid_and_diagonal_invariance():
    s = small_system(seed=0)
    x1 = torch.linspace(-0.02, 0.02, 21, dtype=torch.float64)
    x2 = torch.linspace(-0.03, 0.03, 31, dtype=torch.float64)
    E = odes.energy_landscape(s, x1, x2)
    assert E.shape == (31, 21)
    # E[i, j] is the energy at (x1[j], x2[i])
    X = torch.tensor([[[float(x1[4])], [float(x2[7])]]], dtype=torch.float64)
    torch.testing.assert_close(E[7, 4], s.energy(X)[0])
    # E depends only on x1 - x2 (shift invariance): constant along diagonals of an equal-step grid
    g = torch.linspace(-0.02, 0.02, 21, dtype=torch.float64)
    Eg = odes.energy_landscape(s, g, g)
    torch.testing.assert_close(Eg.diagonal(offset=3)[1:], Eg.diagonal(offset=3)[:-1])


# ------------------------------------------------------------------ the ODE is a view of the HAM core
def _closed_forms(s: MixerODE, x: torch.Tensor, v: torch.Tensor) -> dict:
    """Eqs. (1)-(2), the pseudo-energy and J v written out directly (the formulas odes.py computed
    before it went through the HAM core), with U_s = V_s and U_c = V_c^T."""
    D = x.shape[-1] * x.shape[-2]
    xc = x - x.mean(dim=(-2, -1), keepdim=True)
    sd = torch.sqrt(xc.pow(2).mean(dim=(-2, -1), keepdim=True) + s.eps)
    G = xc / sd
    Gs = G.sum(-1, keepdim=True) if s.pooled else G
    Gc = G.sum(-2, keepdim=True) if s.pooled else G
    h_s, h_c = s.A @ Gs, Gc @ s.B.mT
    U_s, U_c = s.V_s, s.V_c.mT
    M0 = s.A.mT @ F.gelu(h_s) + F.gelu(h_c) @ s.B
    M = (s.A.mT + U_s) @ F.gelu(h_s) + F.gelu(h_c) @ (s.B + U_c)
    E = (-D * s.eps / sd).squeeze(-1).squeeze(-1) - odes.phi_gelu(h_s).sum((-2, -1)) - odes.phi_gelu(h_c).sum((-2, -1))
    P = E + 0.5 * (Gs * (U_s @ F.gelu(h_s))).sum((-2, -1)) + 0.5 * (Gc * (F.gelu(h_c) @ U_c)).sum((-2, -1))

    def jvp(w):
        wc = w - w.mean(dim=(-2, -1), keepdim=True)
        return wc / sd - xc * (xc * w).sum(dim=(-2, -1), keepdim=True) / (D * sd ** 3)

    return dict(G=G, M=M, velocity=M - x, energy=E, pseudo=P, jvp=jvp(v), grad=jvp(x - M0))


@pytest.mark.parametrize("n_systems", [None, 3])
@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("asym", [False, True])
def test_flow_and_energies_equal_the_closed_forms(asym, pooled, n_systems):
    s = MixerODE.random(4, 8, 20, 160, breaking=(1.5, 4.0) if asym else (0.0, 0.0), pooled=pooled,
                        n_systems=n_systems, seed=5)
    x = initial_states(s, batch=6, mean=1.0, std=2.5, seed=7)
    v = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(8))
    ref = _closed_forms(s, x, v)
    got = dict(G=s.layer_norm(x), M=s.mixing(ref["G"]), velocity=s.velocity(x), energy=s.energy(x),
               pseudo=s.pseudo_energy(x), jvp=s.ln_jvp(x, v), grad=s.energy_grad(x))
    for k, r in ref.items():
        scale = float(r.abs().max())
        torch.testing.assert_close(got[k], r, rtol=0, atol=1e-12 * scale, msg=k)
    assert isinstance(s.reduced, ReducedHAM) and s.reduced.is_tied == (not asym)


def test_the_ode_runs_through_the_ham():
    s = large_system(asymmetric=True, seed=3)
    assert s.ham.untied_synapses == ("A", "B") and s.symmetric_part().ham.is_tied
    x0 = initial_states(s, batch=4, mean=1.0, std=2.5, seed=4)
    with pytest.raises(NoEnergyError, match="tied_energy"):
        s.reduced.energy({"x": x0})
    t, xs = integrate(s, x0, t_end=0.5, dt=0.01, method="euler")
    tr = s.reduced.run({"x": x0}, 50, 0.01, method="euler", record_states=True)
    assert torch.equal(xs, tr.states["x"]) and torch.equal(t, tr.t)
    # recording: every save_every steps and the final state
    t, xs = integrate(s, x0, t_end=0.5, dt=0.01, save_every=20)
    assert xs.shape == (4, 4, 4, 8)
    torch.testing.assert_close(t, torch.tensor([0.0, 0.2, 0.4, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="save_every"):
        integrate(s, x0, save_every=0)


def test_breaking_parts_are_those_of_the_asym_mixer_block():
    """V_s, V_c have the layout of AsymMlp.breaking: one Euler step of size 1 without the leak
    is an AsymMixer block with the Lagrangian LayerNorm (gamma 1, delta 0)."""
    S, C = 4, 8
    blk = mx.ParallelMixerBlock(C, S, mlp_ratio=(2.5, 4.0), mlp_layer=mx.AsymMlp,
                                norm_layer=mx.NORMS["lagrangian"]).double()
    with torch.no_grad():
        for mlp in (blk.mlp_tokens, blk.mlp_channels):
            mlp.fc2.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))
    s = MixerODE(blk.mlp_tokens.w1.detach(), blk.mlp_channels.w1.detach(), blk.mlp_tokens.breaking.detach(),
                 blk.mlp_channels.breaking.detach(), eps=blk.norm.eps)
    assert not s.is_symmetric
    x = initial_states(blk, batch=5, mean=1.0, std=2.0, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(s.velocity(x), blk.update(x) - x, rtol=0, atol=1e-12)


def test_initial_states_one_home():
    s = large_system(seed=0)
    blk = mx.ParallelMixerBlock(8, 4, mlp_layer=mx.SymMlp).double()
    assert torch.equal(initial_states(s, batch=3, seed=4), initial_states(blk, batch=3, seed=4))
    with pytest.raises(TypeError, match="MixerODE or a Mixer block"):
        initial_states(torch.zeros(2, 2))


# issue 20: a bad or tiny step is one line that says what to do, everywhere a duration / dt is taken
@pytest.mark.parametrize("dt, says", [(0.0, "must be a positive, finite number, got 0.0. Use a small positive step"),
                                      (float("nan"), "must be a positive, finite number, got nan"),
                                      (float("inf"), "must be a positive, finite number, got inf"),
                                      (1e-9, r"needs 1e\+10 steps, more than the cap of 1,000,000: use dt >= 1e-05")])
def test_bad_or_tiny_steps_are_one_line_errors(dt, says):
    from hopfield_lab.demos import ham as dh
    from hopfield_lab.demos import symmetry_breaking as sb

    calls = [lambda: integrate(lambda x: -x, torch.ones(2), t_end=10.0, dt=dt),
             lambda: sb.run(dt=dt, t_end=10.0),
             lambda: sb.ensemble_fraction([0.0], dt=dt, t_end=10.0, n_systems=1, batch=1),
             lambda: dh.plane_run(dt=dt, T=10.0)]
    for call in calls:
        with pytest.raises(ValueError, match=says) as exc:
            call()
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="the duration t_end must be a positive, finite number, got inf"):
        integrate(lambda x: -x, torch.ones(2), t_end=float("inf"), dt=0.1)
