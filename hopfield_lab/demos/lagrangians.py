"""Demos of chapter 3 (Lagrangians and the Legendre transform).

* :func:`make_lagrangian` -- a Lagrangian of :mod:`hopfield_lab.lagrangians` by short name.
* :func:`slice_curves` -- L, g and the layer energy along a line through a small layer.
* :func:`make_widget` -- the chapter's ipywidgets demo (pick a Lagrangian and its parameters).
* :func:`sweep_animation` -- its static twin: the same panels, animated over parameter values.
* :func:`elementwise_layernorm` -- LayerNorm with an element-wise gain, as ``nn.LayerNorm`` does.
* :func:`jacobian_asymmetry`, :func:`circulation` -- two tests of "is this field a gradient?".
* :func:`gelu_second_derivative`, :func:`gelu_convexity_breakpoint` -- where Phi_GELU stops being convex.

The Lagrangians themselves live in :mod:`hopfield_lab.lagrangians`; this module only draws them
and runs the numerical experiments of the chapter.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import lagrangians as lg

#: short names of the Lagrangians the widget offers, in display order
NAMES = ("identity", "repu", "softmax", "tanh", "gelu", "layernorm", "spherical")

#: which widget parameters each Lagrangian uses
PARAMS = {
    "identity": (),
    "repu": ("n",),
    "softmax": ("beta",),
    "tanh": (),
    "gelu": (),
    "layernorm": ("gamma", "eps"),
    "spherical": ("gamma", "eps"),
}

DEFAULTS = {"n": 2, "beta": 1.0, "gamma": 1.0, "eps": 0.1}


def make_lagrangian(name: str, *, n: int = 2, beta: float = 1.0, gamma: float = 1.0, eps: float = 0.1,
                    dim=-1) -> lg.Lagrangian:
    """Build a Lagrangian of :mod:`hopfield_lab.lagrangians` from its short name.

    ``name`` is one of :data:`NAMES`; parameters a Lagrangian does not use are ignored
    (``n`` for RePU, ``beta`` for softmax, ``gamma`` and ``eps`` for LayerNorm and spherical).
    """
    key = name.lower()
    if key not in PARAMS and key != "relu":
        raise ValueError(f"unknown Lagrangian {name!r}; choose one of {', '.join(NAMES)}")
    given = {"n": int(n), "beta": float(beta), "gamma": float(gamma), "eps": float(eps)}
    return lg.get_lagrangian(key, dim=dim, **{p: given[p] for p in PARAMS.get(key, ())})


def label(name: str, **params) -> str:
    """A short human-readable label such as ``"softmax (β=2)"``."""
    sym = {"n": "n", "beta": "β", "gamma": "γ", "eps": "ε"}
    used = [f"{sym[p]}={params.get(p, DEFAULTS[p]):.3g}" for p in PARAMS[name.lower()]]
    return name + (f" ({', '.join(used)})" if used else "")


def slice_curves(name: str, t: torch.Tensor | None = None, s: float = 0.5, **params) -> dict:
    """L, g and the layer energy of a 3-neuron layer along the line x(t) = (t, s, 0).

    Args:
        name: a short name from :data:`NAMES`; ``params`` are passed to :func:`make_lagrangian`.
        t: 1-D tensor of positions along the line (default: 301 points in [-3, 3]).
        s: the fixed state of neuron 2.

    Returns a dict of float64 tensors: ``t`` (T,), ``x`` (T, 3), ``L`` (T,), ``g`` (T, 3),
    ``E`` (T,) the Legendre term <x, g> - L, ``g_autograd`` (T, 3) the gradient of L by autograd
    (a check of the closed form), and ``grad_err`` the largest |g - g_autograd|.
    """
    if t is None:
        t = torch.linspace(-3.0, 3.0, 301, dtype=torch.float64)
    t = torch.as_tensor(t, dtype=torch.float64)
    x = torch.stack([t, torch.full_like(t, float(s)), torch.zeros_like(t)], dim=-1)
    lag = make_lagrangian(name, **params).to(torch.float64)
    xr = x.clone().requires_grad_(True)
    L = lag(xr)
    (g_auto,) = torch.autograd.grad(L.sum(), xr)
    with torch.no_grad():
        g = lag.activation(x)
        E = lag.legendre(x)
    return {
        "t": t, "x": x, "L": L.detach(), "g": g, "E": E, "g_autograd": g_auto,
        "grad_err": float((g - g_auto).abs().max()),
    }


def _draw(axes, curves: dict, title: str) -> None:
    t = curves["t"].numpy()
    for ax in axes:
        ax.clear()
    axes[0].plot(t, curves["L"].numpy(), color="C0")
    axes[0].set(title="Lagrangian L(x)", xlabel="t = x₁ (dimensionless)", ylabel="L (dimensionless)")
    for i in range(3):
        axes[1].plot(t, curves["g"][:, i].numpy(), color=f"C{i}", label=f"g{i + 1}")
        axes[1].plot(t[::15], curves["g_autograd"][::15, i].numpy(), "o", ms=3, mfc="none", color=f"C{i}")
    axes[1].legend(loc="best", fontsize=8)
    axes[1].set(title="activation g = ∇L (dots: autograd)", xlabel="t = x₁ (dimensionless)",
                ylabel="g (dimensionless)")
    axes[2].plot(t, curves["E"].numpy(), color="C3")
    axes[2].set(title="layer energy ⟨x,g⟩ − L", xlabel="t = x₁ (dimensionless)", ylabel="E (dimensionless)")
    axes[0].figure.suptitle(title)


def plot_slice(name: str, s: float = 0.5, axes=None, **params):
    """Draw :func:`slice_curves` in three panels (L, g, layer energy); returns (figure, curves)."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    curves = slice_curves(name, s=s, **params)
    _draw(axes, curves, f"{label(name, **params)} on a 3-neuron layer, x = (t, {s:g}, 0)")
    return axes[0].figure, curves


def make_widget(name: str = "softmax"):
    """The chapter's interactive demo: choose a Lagrangian and its parameters.

    Returns an ``ipywidgets.VBox`` with the controls and a plot. Extra attributes for tests and
    for readers who want the numbers: ``controls`` (dict of the control widgets by parameter
    name), ``update()`` (the callback; runs on every change of a control) and ``last`` (the
    :func:`slice_curves` dict of the latest drawing, plus ``name`` and ``params``).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    controls = {
        "name": w.Dropdown(options=list(NAMES), value=name, description="Lagrangian"),
        "n": w.IntSlider(value=2, min=2, max=5, description="n (RePU)"),
        "beta": w.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="β (softmax)"),
        "gamma": w.FloatSlider(value=1.0, min=0.1, max=3.0, step=0.1, description="γ"),
        "eps": w.FloatLogSlider(value=0.1, base=10, min=-4, max=0.5, step=0.1, description="ε"),
        "s": w.FloatSlider(value=0.5, min=-2.0, max=2.0, step=0.1, description="x₂ = s"),
    }
    out = w.Output()
    box = w.VBox([w.HBox([controls["name"], controls["s"]]),
                  w.HBox([controls["n"], controls["beta"]]),
                  w.HBox([controls["gamma"], controls["eps"]]), out])
    box.controls = controls
    box.last = None

    def update(*_):
        nm = controls["name"].value
        params = {p: controls[p].value for p in PARAMS[nm]}
        for p in ("n", "beta", "gamma", "eps"):
            controls[p].disabled = p not in params
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
            curves = slice_curves(nm, s=controls["s"].value, **params)
            _draw(axes, curves, f"{label(nm, **params)} on a 3-neuron layer, x = (t, {controls['s'].value:g}, 0)"
                  f" | max |g − ∇L| = {curves['grad_err']:.1e}")
            plt.show()
            plt.close(fig)
        box.last = dict(curves, name=nm, params=params)

    from ..viz import connect

    return connect(box, controls, update)


def sweep_animation(settings: list[tuple[str, dict]], s: float = 0.5, interval: int = 400, dpi: int = 72):
    """Static twin of :func:`make_widget`: the same three panels, one frame per setting.

    ``settings`` is a list of ``(name, params)`` pairs, e.g.
    ``[("softmax", {"beta": b}) for b in (0.25, 1, 4)]``. Returns a
    ``matplotlib.animation.FuncAnimation``; show it in HTML with ``.to_jshtml()``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=dpi, constrained_layout=True)
    frames = [slice_curves(nm, s=s, **p) for nm, p in settings]
    # y-limits shared by all frames of the same Lagrangian, so that a sweep reads as motion
    lims = {}
    for (nm, _), f in zip(settings, frames):
        old = lims.get(nm, [(math.inf, -math.inf)] * 3)
        lims[nm] = [(min(lo, float(f[k].min())), max(hi, float(f[k].max()))) for (lo, hi), k in zip(old, ("L", "g", "E"))]

    def draw(i):
        nm, p = settings[i]
        _draw(axes, frames[i], f"{label(nm, **p)} on a 3-neuron layer, x = (t, {s:g}, 0)   [frame {i + 1}/{len(settings)}]")
        for ax, (lo, hi) in zip(axes, lims[nm]):
            pad = 0.05 * (hi - lo + 1e-9)
            ax.set_ylim(lo - pad, hi + pad)
        return []

    anim = FuncAnimation(fig, draw, frames=len(settings), interval=interval)
    plt.close(fig)
    return anim


# --- LayerNorm with an element-wise gain --------------------------------------------------------

def elementwise_layernorm(x: torch.Tensor, gamma: torch.Tensor, delta: torch.Tensor | None = None,
                          eps: float = 1e-5) -> torch.Tensor:
    """What ``torch.nn.LayerNorm(D)`` computes: gamma ⊙ (x − mean)/sqrt(Var + eps) + delta.

    ``x`` has shape (..., D) and ``gamma``, ``delta`` shape (D,). With all gamma_i equal this is
    the activation of the LayerNorm Lagrangian; with unequal gamma_i it is not a gradient of any
    scalar function (see :func:`jacobian_asymmetry`).
    """
    D = x.shape[-1]
    if gamma.shape != (D,):
        raise ValueError(f"gamma must have shape ({D},) to match x's last dim, got {tuple(gamma.shape)}")
    return torch.nn.functional.layer_norm(x, (D,), weight=gamma, bias=delta, eps=eps)


def jacobian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Jacobian J_ij = d fn(x)_i / d x_j of a map R^D -> R^D at one point x of shape (D,)."""
    return torch.autograd.functional.jacobian(fn, x)


def jacobian_asymmetry(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """Relative asymmetry ||J − Jᵀ||_F / ||J||_F of the Jacobian of ``fn`` at ``x`` (shape (D,)).

    Zero (to rounding) for every gradient field g = ∇L, because then J is the Hessian of L.
    """
    J = jacobian(fn, x)
    return float(torch.linalg.norm(J - J.T) / torch.linalg.norm(J))


def circulation(fn: Callable[[torch.Tensor], torch.Tensor], center: torch.Tensor, u: torch.Tensor,
                v: torch.Tensor, radius: float = 1.0, n: int = 2048) -> float:
    """The loop integral ∮ fn(x)·dx around the circle center + radius (cos θ u + sin θ v).

    ``center``, ``u``, ``v`` have shape (D,). For a gradient field the integral is zero (the
    potential returns to its start value); a nonzero value proves that no Lagrangian exists.
    Computed with the periodic trapezoid rule on ``n`` points (spectrally accurate).
    """
    theta = torch.arange(n, dtype=center.dtype) * (2 * math.pi / n)
    pts = center + radius * (torch.cos(theta)[:, None] * u + torch.sin(theta)[:, None] * v)
    tangent = radius * (-torch.sin(theta)[:, None] * u + torch.cos(theta)[:, None] * v)
    return float((fn(pts) * tangent).sum() * (2 * math.pi / n))


# --- GELU's Lagrangian ---------------------------------------------------------------------------

def _normal_pdf(x):
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _normal_cdf(x):
    return 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))


def gelu_second_derivative(x: torch.Tensor) -> torch.Tensor:
    """Phi_GELU''(x) = GELU'(x) = Φ_N(x) + x φ_N(x) (normal CDF and density), element-wise."""
    return _normal_cdf(x) + x * _normal_pdf(x)


def gelu_convexity_breakpoint(x0: float = -1.0, tol: float = 1e-14, max_iter: int = 50) -> float:
    """The point x* < 0 where Phi_GELU'' changes sign (GELU has its minimum), by Newton's method.

    Solves Φ_N(x) + x φ_N(x) = 0 with the derivative φ_N(x)(2 − x²); Phi_GELU is convex for
    x ≥ x* and concave below. Returns x* ≈ −0.7518 (float64).
    """
    x = torch.tensor(float(x0), dtype=torch.float64)
    for _ in range(max_iter):
        f = gelu_second_derivative(x)
        fp = _normal_pdf(x) * (2 - x * x)
        step = f / fp
        x = x - step
        if abs(float(step)) < tol:
            return float(x)
    raise RuntimeError(f"Newton's method did not converge from x0={x0}; start closer to -0.75")
