"""Tests of chapter 3's demos (hopfield_lab.demos.lagrangians): the auto-checked exercise, the
gain sweep, the figure helpers, and the machine independence of the chapter's checked numbers.

(The older tests of this module's widget and numerical helpers are in test_demos_part1b.py.)
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
def test_layernorm_check_accepts_right_answers(capsys, fn):
    assert dl.check_layernorm_lagrangian(fn) is None   # the cell shows the printed line only
    assert capsys.readouterr().out.strip() == f"{CORRECT} LayerNorm Lagrangian: correct."


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
def test_layernorm_check_rejects_typical_mistakes(capsys, fn, says):
    dl.check_layernorm_lagrangian(fn)
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{WRONG} LayerNorm Lagrangian:"), out
    assert says in out and "Traceback" not in out, out


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
