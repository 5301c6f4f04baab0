"""Tests of chapter 3's demos (hopfield_lab.demos.lagrangians): the auto-checked exercise, the
gain sweep, the figure helpers, the machine independence of the chapter's checked numbers, and
the widget callbacks, sweeps and Jacobians (driven the way Jupyter does, by setting control values).
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import lagrangians as lg  # noqa: E402
from hopfield_lab.demos import lagrangians as dl  # noqa: E402
from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402

F64 = torch.float64


# --- the coding exercise: the LayerNorm Lagrangian ----------------------------------------------

def reference(x, gamma, delta, eps):
    """The chapter's reference solution."""
    D = x.shape[-1]
    centred = x - x.mean(dim=-1, keepdim=True)
    var = centred.pow(2).mean(dim=-1)
    return D * gamma * torch.sqrt(var + eps) + (delta * x).sum(dim=-1)


def via_torch_var(x, gamma, delta, eps):
    """Another right answer: torch.var with the biased (1/D) estimator."""
    return x.shape[-1] * gamma * torch.sqrt(torch.var(x, dim=-1, unbiased=False) + eps) + x @ delta


@pytest.mark.parametrize("fn", [reference, via_torch_var])
def test_layernorm_check_accepts_right_answers(verdict, fn):
    assert verdict(dl.check_layernorm_lagrangian, fn) == f"{CORRECT} LayerNorm Lagrangian: correct."


def _stub(x, gamma, delta, eps):
    raise NotImplementedError


def unbiased(x, gamma, delta, eps):          # torch.var's default divides by D - 1
    return x.shape[-1] * gamma * torch.sqrt(torch.var(x, dim=-1) + eps) + (delta * x).sum(-1)


def no_factor_d(x, gamma, delta, eps):
    return gamma * torch.sqrt(torch.var(x, dim=-1, unbiased=False) + eps) + (delta * x).sum(-1)


def no_shift(x, gamma, delta, eps):
    return x.shape[-1] * gamma * torch.sqrt(torch.var(x, dim=-1, unbiased=False) + eps)


def no_eps(x, gamma, delta, eps):
    return x.shape[-1] * gamma * torch.sqrt(torch.var(x, dim=-1, unbiased=False)) + (delta * x).sum(-1)


def wrong_axis(x, gamma, delta, eps):        # reduces over the states instead of the neurons
    centred = x - x.mean(dim=0, keepdim=True)
    return x.shape[0] * gamma * torch.sqrt(centred.pow(2).mean(dim=0) + eps) + (delta * x).sum(0)


def only_2d(x, gamma, delta, eps):           # right for (B, D), wrong for (B1, B2, D)
    return reference(x.reshape(-1, x.shape[-1]), gamma, delta, eps)


def detached(x, gamma, delta, eps):          # right values, but autograd cannot see through them
    return reference(x.detach(), gamma, delta, eps)


def as_list(x, gamma, delta, eps):
    return reference(x, gamma, delta, eps).tolist()


@pytest.mark.parametrize("fn,says", [
    (_stub, "not implemented yet"),
    (unbiased, "unbiased variance"),
    (no_factor_d, "the factor D"),
    (no_shift, "⟨δ, x⟩ is missing"),
    (no_eps, "ε is missing"),
    (wrong_axis, "reduce over the last axis"),
    (only_2d, "batch of shape (2, 3, 8)"),
    (detached, "autograd cannot differentiate"),
    (as_list, "expected a torch.Tensor, got list"),
])
def test_layernorm_check_rejects_typical_mistakes(verdict, fn, says):
    out = verdict(dl.check_layernorm_lagrangian, fn)
    assert out.startswith(f"{WRONG} LayerNorm Lagrangian:"), out
    assert says in out, out


# --- the gain sweep -------------------------------------------------------------------------------

def _loop(D=8, seed=4):
    gen = torch.Generator().manual_seed(seed)
    x0, z = torch.randn(D, generator=gen, dtype=F64), torch.randn(D, generator=gen, dtype=F64)
    u, v = torch.linalg.qr(torch.randn(D, 2, generator=gen, dtype=F64)).Q.T
    return x0, z, u, v


def test_gain_sweep_matches_direct_computation_and_vanishes_only_for_a_scalar_gain():
    x0, z, u, v = _loop()
    sigmas = [0.0, 0.01, 0.02, 0.3]
    asym, circ = dl.gain_sweep(x0, z, u, v, sigmas, eps=1e-5)
    assert len(asym) == len(circ) == 4
    f = lambda y: dl.elementwise_layernorm(y, 1 + 0.3 * z, eps=1e-5)  # noqa: E731
    assert asym[3] == dl.jacobian_asymmetry(f, x0) and circ[3] == dl.circulation(f, x0, u, v)
    assert asym[0] < 1e-14 and abs(circ[0]) < 1e-12
    assert all(a > 1e-4 for a in asym[1:]) and all(abs(c) > 1e-5 for c in circ[1:])
    # first order in the spread for small spreads (eq. ch3-ln-asym): doubling sigma doubles both
    assert asym[2] / asym[1] == pytest.approx(2, rel=0.02)
    assert circ[2] / circ[1] == pytest.approx(2, rel=0.02)


# --- the figures ----------------------------------------------------------------------------------

def test_plot_gallery_draws_each_lagrangian_and_its_activation():
    fig = dl.plot_gallery(s=0.5, n=3, beta=2.0, gamma=1.0, eps=0.1)
    axes = fig.axes
    assert len(axes) == 2 * len(dl.NAMES)
    c = dl.slice_curves("softmax", s=0.5, n=3, beta=2.0, gamma=1.0, eps=0.1)
    j = dl.NAMES.index("softmax")
    assert torch.allclose(torch.as_tensor(axes[j].lines[0].get_ydata()), c["L"])
    g = torch.stack([torch.as_tensor(line.get_ydata()) for line in axes[len(dl.NAMES) + j].lines], -1)
    assert torch.allclose(g, c["g"]) and torch.allclose(g.sum(-1), torch.ones(len(c["t"]), dtype=F64))
    plt.close(fig)


def test_plot_tangents_marks_minus_the_legendre_transform_on_the_vertical_axis():
    lag = lg.Tanh().to(F64)
    g = torch.linspace(-0.9, 0.9, 19, dtype=F64)
    closed = 0.5 * ((1 + g) * torch.log1p(g) + (1 - g) * torch.log1p(-g))
    fig = dl.plot_tangents(lag, [-1.0, 0.5], g, closed)
    squares = [line for line in fig.axes[0].lines if line.get_marker() == "s"]
    for x0, sq in zip([-1.0, 0.5], squares):
        g0 = math.tanh(x0)
        want = 0.5 * ((1 + g0) * math.log1p(g0) + (1 - g0) * math.log1p(-g0))
        assert sq.get_xdata()[0] == 0 and sq.get_ydata()[0] == pytest.approx(-want, abs=1e-12)
    plt.close(fig)


def test_gelu_plots_shade_the_non_convex_region():
    xs = torch.linspace(-4, 2.5, 131, dtype=F64)
    x_star = dl.gelu_convexity_breakpoint()
    fig = dl.plot_gelu(xs, x_star)
    assert len(fig.axes) == 3
    assert torch.allclose(torch.as_tensor(fig.axes[2].lines[0].get_ydata()), dl.gelu_second_derivative(xs))
    for ax in fig.axes:
        (span,) = ax.patches
        left, right = span.get_x(), span.get_x() + span.get_width()
        assert left == pytest.approx(-4) and right == pytest.approx(x_star)
    plt.close(fig)
    energy = lg.GELU().to(F64).legendre(xs.unsqueeze(-1))
    fig = dl.plot_gelu_energy(xs, energy, x_star)
    assert torch.allclose(torch.as_tensor(fig.axes[0].lines[0].get_ydata()), energy)
    plt.close(fig)


# --- the chapter's checked numbers do not depend on the machine ----------------------------------

def _margin(value: float, digits: int) -> float:
    """Distance of ``value`` from the nearest rounding boundary at ``digits`` decimals, in units of
    the last printed digit (0.5 = in the middle, 0 = on the boundary)."""
    scaled = abs(value) * 10 ** digits
    return abs(scaled - math.floor(scaled) - 0.5)


def _checked_numbers():
    """The numbers that the chapter's nbval-check-output cells print, with their printed decimals
    (the LayerNorm Hessian cell, the gain-sweep cell and the GELU breakpoint cell)."""
    out = []
    gen_ln = torch.Generator().manual_seed(3)
    D, gamma, eps = 8, 1.5, 0.2
    x_ln = torch.randn(D, generator=gen_ln, dtype=F64)
    ln = lg.LayerNorm(gamma=gamma, delta=torch.linspace(-0.3, 0.3, D, dtype=F64), eps=eps).to(F64)
    eig = torch.linalg.eigvalsh(torch.func.hessian(lambda v: ln(v))(x_ln))
    s = float(torch.sqrt((x_ln - x_ln.mean()).pow(2).mean() + eps))
    out += [(float(e), 4) for e in eig[1:]]              # eig[0] is the zero mode: prints 0.0
    out += [(float(ln.legendre(x_ln)), 6), (-D * gamma * eps / s, 6)]
    x0, z, u, v = _loop()
    asym, circ = dl.gain_sweep(x0, z, u, v, [0.05, 0.1, 0.2, 0.4], eps=1e-5)
    out += [(a, 4) for a in asym] + [(c, 4) for c in circ]
    x_star = dl.gelu_convexity_breakpoint()
    out += [(x_star, 4), (float(torch.nn.functional.gelu(torch.tensor(x_star, dtype=F64))), 4)]
    out += [(float(dl.gelu_second_derivative(torch.tensor(-2.0, dtype=F64))), 4)]
    return out


def test_checked_numbers_are_far_from_their_rounding_boundaries():
    """Float64 rounding differences between machines are ~1e-15; each printed number must sit at
    least 5% of its last digit (>= 5e-8 here) away from the boundary where the printout flips."""
    for value, digits in _checked_numbers():
        assert _margin(value, digits) > 0.05, f"{value!r} printed with {digits} decimals is fragile"


def test_checked_numbers_do_not_depend_on_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _checked_numbers()
        torch.set_num_threads(2)
        two = _checked_numbers()
    finally:
        torch.set_num_threads(before)
    assert [round(v, d) for v, d in one] == [round(v, d) for v, d in two]


# --- the chapter's widget, sweeps and Jacobians ---------------------------------------------------

@pytest.mark.parametrize("name", dl.NAMES)
def test_slice_curves_gradient_and_legendre(name):
    c = dl.slice_curves(name, t=torch.linspace(-2, 2, 41), s=-0.3, n=3, beta=2.0, gamma=1.5, eps=0.05)
    assert c["grad_err"] < 1e-10
    assert c["g"].shape == (41, 3) and c["L"].shape == (41,)
    # layer energy is <x, g> - L by definition
    assert torch.allclose(c["E"], (c["x"] * c["g"]).sum(-1) - c["L"], atol=1e-12)


def test_make_lagrangian_rejects_unknown_name():
    with pytest.raises(ValueError, match="choose one of"):
        dl.make_lagrangian("sigmoid")


def test_widget_callback_softmax_and_layernorm():
    box = dl.make_widget("identity")
    assert box.last["name"] == "identity"
    assert torch.allclose(box.last["g"], box.last["x"])           # identity: g = x
    box.controls["name"].value = "softmax"                          # triggers the callback
    box.controls["beta"].value = 4.0
    last = box.last
    assert last["name"] == "softmax" and last["params"] == {"beta": 4.0}
    assert torch.allclose(last["g"].sum(-1), torch.ones(len(last["t"]), dtype=torch.float64))
    assert torch.allclose(last["g"], torch.softmax(4.0 * last["x"], -1))
    assert box.controls["n"].disabled and not box.controls["beta"].disabled
    # LayerNorm: the layer energy must be -D γ ε / sqrt(Var + ε) (closed form of chapter 3)
    box.controls["name"].value = "layernorm"
    box.controls["gamma"].value = 2.0
    box.controls["eps"].value = 0.5
    box.controls["s"].value = 1.0
    last = box.last
    x = last["x"]
    var = x.var(-1, unbiased=False)
    assert torch.allclose(last["E"], -3 * 2.0 * 0.5 / torch.sqrt(var + 0.5), atol=1e-12)
    assert float(x[0, 1]) == 1.0                                    # the s slider moved neuron 2
    assert last["grad_err"] < 1e-10


def test_sweep_animation_frames():
    anim = dl.sweep_animation([("softmax", {"beta": 0.5}), ("softmax", {"beta": 4.0})])
    html = anim.to_jshtml()
    assert "<img" in html or "data:image/png" in html
    assert html.count("data:image/png") == 2 or "frames[1]" in html


def test_elementwise_layernorm_matches_nn_layernorm():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    gamma = torch.rand(7, generator=gen, dtype=torch.float64) + 0.5
    delta = torch.randn(7, generator=gen, dtype=torch.float64)
    ref = torch.nn.LayerNorm(7, eps=1e-5).double()
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(delta)
    assert torch.allclose(dl.elementwise_layernorm(x, gamma, delta), ref(x))
    with pytest.raises(ValueError, match="shape"):
        dl.elementwise_layernorm(x, gamma[:3])


def test_jacobian_asymmetry_and_circulation():
    gen = torch.Generator().manual_seed(1)
    D = 6
    x0 = torch.randn(D, generator=gen, dtype=torch.float64)
    u, v = torch.linalg.qr(torch.randn(D, 2, generator=gen, dtype=torch.float64)).Q.T
    scalar = lg.LayerNorm(gamma=1.3, eps=1e-5)
    assert dl.jacobian_asymmetry(scalar.activation, x0) < 1e-12
    assert abs(dl.circulation(scalar.activation, x0, u, v)) < 1e-10
    gains = 1 + 0.3 * torch.randn(D, generator=gen, dtype=torch.float64)
    f = lambda y: dl.elementwise_layernorm(y, gains)  # noqa: E731
    assert dl.jacobian_asymmetry(f, x0) > 1e-2
    assert abs(dl.circulation(f, x0, u, v)) > 1e-3
    # a rotation field (-y, x) has circulation 2π r² around a circle of radius r
    rot = lambda p: torch.stack([-p[..., 1], p[..., 0]], -1)  # noqa: E731
    e1, e2 = torch.eye(2, dtype=torch.float64)
    assert math.isclose(dl.circulation(rot, torch.zeros(2, dtype=torch.float64), e1, e2, radius=2.0),
                        8 * math.pi, rel_tol=1e-10)


def test_gelu_convexity_breakpoint():
    x_star = dl.gelu_convexity_breakpoint()
    assert -0.76 < x_star < -0.74
    # it is the minimum of GELU: GELU'(x*) = 0 by autograd, and Phi'' changes sign there
    x = torch.tensor(x_star, dtype=torch.float64, requires_grad=True)
    (d1,) = torch.autograd.grad(torch.nn.functional.gelu(x), x)
    assert abs(float(d1)) < 1e-12
    xs = torch.tensor([x_star - 1e-3, x_star + 1e-3], dtype=torch.float64)
    c = dl.gelu_second_derivative(xs)
    assert c[0] < 0 < c[1]
    # gelu_second_derivative is the second derivative of the library's Phi
    xs = torch.linspace(-3, 3, 31, dtype=torch.float64)
    xs.requires_grad_(True)
    (d1,) = torch.autograd.grad(lg.phi_gelu(xs).sum(), xs, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), xs)
    xs = xs.detach()
    assert torch.allclose(d2, dl.gelu_second_derivative(xs), atol=1e-12)
