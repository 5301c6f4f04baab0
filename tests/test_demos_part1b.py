"""Tests of the demos of chapter 3 (Lagrangians); chapter 4's are in test_demos_ham.py.

They drive the widgets' callbacks the way Jupyter does (by setting control values) and check
mathematical facts of what the callbacks computed, not just that they ran.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import lagrangians as lg  # noqa: E402
from hopfield_lab.demos import lagrangians as dl  # noqa: E402


# --- chapter 3 -----------------------------------------------------------------------------------

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
