"""Demos of chapter 3 (Lagrangians and the Legendre transform).

* :func:`make_lagrangian` -- a Lagrangian of :mod:`hopfield_lab.lagrangians` by short name.
* :func:`slice_curves` -- L, g and the layer energy along a line through a small layer.
* :func:`make_widget` -- the chapter's ipywidgets demo (pick a Lagrangian and its parameters).
* :func:`sweep_animation` -- its static twin: the same panels, animated over parameter values.
* :func:`elementwise_layernorm` -- LayerNorm with an element-wise gain, as ``nn.LayerNorm`` does.
* :func:`jacobian_asymmetry`, :func:`circulation` -- two tests of "is this field a gradient?".
* :func:`gain_sweep` -- both tests for gains 1 + sigma z of growing spread sigma.
* :func:`gelu_second_derivative`, :func:`gelu_convexity_breakpoint` -- where Phi_GELU stops being convex.
* :func:`plot_gallery`, :func:`plot_tangents`, :func:`plot_gain_sweep`, :func:`plot_gelu`,
  :func:`plot_gelu_energy` -- the chapter's figures.
* :func:`check_layernorm_lagrangian` -- the check cell of the chapter's coding exercise.

The Lagrangians themselves live in :mod:`hopfield_lab.lagrangians`; this module only draws them
and runs the numerical experiments of the chapter.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ... import lagrangians as lg
from .. import viz

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
    axes[0].set(title="Lagrangian L(x)", xlabel="$t = x_1$ (dimensionless)", ylabel="L (dimensionless)")
    for i in range(3):
        axes[1].plot(t, curves["g"][:, i].numpy(), color=f"C{i}", label=f"$g_{i + 1}$")
        axes[1].plot(t[::15], curves["g_autograd"][::15, i].numpy(), "o", ms=3, mfc="none", color=f"C{i}")
    axes[1].legend(loc="best", fontsize=8)
    axes[1].set(title="activation g = ∇L\n(dots: autograd)", xlabel="$t = x_1$ (dimensionless)",
                ylabel="g (dimensionless)")
    axes[2].plot(t, curves["E"].numpy(), color="C3")
    axes[2].set(title="layer energy ⟨x,g⟩ − L", xlabel="$t = x_1$ (dimensionless)", ylabel="E (dimensionless)")
    axes[0].figure.suptitle(title, fontsize=10)


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
            fig, axes = viz.panels(3, row_height=2.6)
            curves = slice_curves(nm, s=controls["s"].value, **params)
            _draw(axes, curves, f"{label(nm, **params)} on a 3-neuron layer, x = (t, {controls['s'].value:g}, 0)"
                  f"\nmax |g − ∇L| = {curves['grad_err']:.1e}")
            plt.show()
            plt.close(fig)
        box.last = dict(curves, name=nm, params=params)

    from ..viz import connect

    return connect(box, controls, update)


def sweep_animation(settings: list[tuple[str, dict]], s: float = 0.5, interval: int = 400, dpi: int = 100):
    """Static twin of :func:`make_widget`: the same three panels, one frame per setting.

    ``settings`` is a list of ``(name, params)`` pairs, e.g.
    ``[("softmax", {"beta": b}) for b in (0.25, 1, 4)]``. Returns a
    ``matplotlib.animation.FuncAnimation``; show it in HTML with its text alternative,
    ``viz.player(anim, alt=...)``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, axes = viz.panels(3, row_height=2.6, dpi=dpi)
    frames = [slice_curves(nm, s=s, **p) for nm, p in settings]
    # y-limits shared by all frames of the same Lagrangian, so that a sweep reads as motion
    lims = {}
    for (nm, _), f in zip(settings, frames):
        old = lims.get(nm, [(math.inf, -math.inf)] * 3)
        lims[nm] = [(min(lo, float(f[k].min())), max(hi, float(f[k].max()))) for (lo, hi), k in zip(old, ("L", "g", "E"))]

    def draw(i):
        nm, p = settings[i]
        _draw(axes, frames[i], f"{label(nm, **p)} on a 3-neuron layer, x = (t, {s:g}, 0)\n[frame {i + 1}/{len(settings)}]")
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


def gain_sweep(x: torch.Tensor, z: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sigmas,
               eps: float = 1e-5, radius: float = 1.0) -> tuple[list[float], list[float]]:
    """Asymmetry and circulation of an element-wise-gain LayerNorm, for gains 1 + σ z.

    Args:
        x: the state where the Jacobian is taken and the loop's centre, shape (D,).
        z: the direction of the gains, shape (D,): the gains are gamma_i = 1 + sigma * z_i.
        u, v: an orthonormal pair, shape (D,) each, spanning the plane of the loop.
        sigmas: the spreads sigma to sweep (floats).
        eps: the LayerNorm regulariser; radius: the loop's radius.

    Returns two lists with one float per sigma: :func:`jacobian_asymmetry` at ``x`` and
    :func:`circulation` around the loop. Both are zero (to rounding) at sigma = 0.
    """
    asym, circ = [], []
    for sigma in sigmas:
        gains = 1 + float(sigma) * z
        f = lambda y, gains=gains: elementwise_layernorm(y, gains, eps=eps)  # noqa: E731
        asym.append(jacobian_asymmetry(f, x))
        circ.append(circulation(f, x, u, v, radius=radius))
    return asym, circ


# --- the chapter's figures -----------------------------------------------------------------------

def plot_gallery(names=NAMES, s: float = 0.5, **params):
    """Every Lagrangian (top row) and its activation g = ∇L (bottom row) along x = (t, s, 0).

    ``params`` go to :func:`make_lagrangian` (n, beta, gamma, eps). Returns the figure, with
    2 × len(names) axes.
    """
    import matplotlib.pyplot as plt

    ncols = min(4, len(names))
    blocks = math.ceil(len(names) / ncols)     # a block: a row of Lagrangians over a row of activations
    fig = plt.figure(figsize=(viz.MAX_WIDTH_IN, 3.4 * blocks), layout="constrained")
    gs = fig.add_gridspec(2 * blocks, ncols)
    top = [fig.add_subplot(gs[2 * (j // ncols), j % ncols]) for j in range(len(names))]
    bottom = [fig.add_subplot(gs[2 * (j // ncols) + 1, j % ncols], sharex=top[j]) for j in range(len(names))]
    for j, name in enumerate(names):
        c = slice_curves(name, s=s, **params)
        t = c["t"].numpy()
        top[j].plot(t, c["L"].numpy(), color="C0")
        top[j].set_title(label(name, **params), fontsize=9)
        for i in range(3):
            bottom[j].plot(t, c["g"][:, i].numpy(), color=f"C{i}", label=f"$g_{i + 1}$")
        bottom[j].set_xlabel("$t = x_1$", fontsize=9)
        if j % ncols == 0:
            top[j].set_ylabel("Lagrangian $L(x)$", fontsize=9)
            bottom[j].set_ylabel("activation $g_i(x)$", fontsize=9)
    bottom[0].legend(fontsize=8)
    fig.suptitle(f"Lagrangians (top rows) and their activations g = ∇L (bottom rows)\n"
                 f"on a 3-neuron layer, x = (t, {s:g}, 0); all quantities dimensionless", fontsize=10)
    return fig


def plot_tangents(lag: lg.Lagrangian, x0s, g: torch.Tensor, L_star: torch.Tensor,
                  L_star_sup: torch.Tensor | None = None, xlim: float = 3.0):
    """The Legendre transform of a one-neuron Lagrangian, drawn two ways.

    Left: L with its tangents at the states ``x0s``; each tangent cuts the vertical axis at
    −L*(slope). Right: ``L_star`` against ``g`` (tensors of shape (G,)), optionally the values
    ``L_star_sup`` found as a supremum over a grid (every 4th drawn), and the four tangents'
    points (g(x0), <x0, g(x0)> − L(x0)). Returns the figure.
    """
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = viz.panels(2, ncols=1, row_height=3.3)
    xs = torch.linspace(-xlim, xlim, 301, dtype=torch.float64).unsqueeze(-1)   # (301, 1)
    ax0.plot(xs[:, 0], lag(xs), color="k", lw=2, label="Lagrangian L(x)")
    for k, x0 in enumerate(x0s):
        x0t = torch.tensor([[float(x0)]], dtype=torch.float64)
        g0, L0, E0 = float(lag.activation(x0t)), float(lag(x0t)), float(lag.legendre(x0t))
        ax0.plot(xs[:, 0], L0 + g0 * (xs[:, 0] - x0), "--", color=f"C{k}", lw=1)
        ax0.plot([x0], [L0], "o", color=f"C{k}")
        ax0.plot([0], [-E0], "s", color=f"C{k}", label=f"slope g={g0:+.2f}: intercept −L*(g)={-E0:+.2f}")
        ax1.plot([g0], [E0], "o", color=f"C{k}", ms=8)
    ax0.set(xlim=(-xlim, xlim), ylim=(-2.5, 3), xlabel="state x (dimensionless)", ylabel="L (dimensionless)",
            title="Tangents of L: the intercept is −L*(slope)")
    ax0.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax1.plot(g, L_star, color="k", lw=2, label="closed form")
    if L_star_sup is not None:
        ax1.plot(g[::4], L_star_sup[::4], "x", color="C3", label="sup over a grid of states x")
    ax1.set(xlabel="activation g (dimensionless)", ylabel="L*(g) (dimensionless)",
            title="Legendre transform L*(g) (dots: the tangents on the left)")
    ax1.legend(fontsize=8)
    return fig


def plot_gain_sweep(sigmas, asym, circ):
    """The two witnesses of :func:`gain_sweep` against the spread of the gains. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (a0, a1) = viz.panels(2, row_height=3.3)
    a0.plot(sigmas, asym, "o-", ms=3)
    a0.set(xlabel="spread σ of the gains\nγᵢ = 1 + σ zᵢ (dimensionless)",
           ylabel=r"$\|J - J^\top\|_F \,/\, \|J\|_F$",
           title="Jacobian asymmetry of\nnn.LayerNorm-style activation")
    a1.plot(sigmas, circ, "o-", ms=3, color="C3")
    a1.axhline(0, color="k", lw=0.5)
    a1.set(xlabel="spread σ of the gains (dimensionless)", ylabel="∮ g·dx (dimensionless)",
           title="Circulation around a unit circle\n(0 ⇔ a Lagrangian can exist)")
    return fig


def plot_gelu(xs: torch.Tensor, x_star: float):
    """GELU's Lagrangian Φ, GELU = Φ' and the curvature Φ'' on ``xs`` (shape (X,)), with the
    non-convex region x < ``x_star`` shaded. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = viz.panels(3, row_height=2.8)
    panels = [
        (lg.phi_gelu(xs), "Φ(x)", "GELU's Lagrangian Φ"),
        (torch.nn.functional.gelu(xs), "GELU(x) = Φ'(x)", "activation GELU = Φ'"),
        (gelu_second_derivative(xs), "Φ''(x) = GELU'(x)", "curvature Φ'' (negative: not convex)"),
    ]
    lo = float(xs.min())
    for ax, (y, yl, title) in zip(axes, panels):
        ax.plot(xs, y, color="k")
        ax.axvspan(lo, x_star, color="C3", alpha=0.15, label=f"non-convex: x < x* = {x_star:.3f}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="state x (dimensionless)", ylabel=yl + " (dimensionless)", title=title)
    axes[0].legend(fontsize=8)
    return fig


def plot_gelu_energy(xs: torch.Tensor, energy: torch.Tensor, x_star: float):
    """The layer energy x·GELU(x) − Φ(x) of one neuron (``energy`` against ``xs``, shape (X,)),
    with the non-convex region of Φ shaded and x* marked. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    ax.plot(xs, energy, color="k")
    ax.axvspan(float(xs.min()), x_star, color="C3", alpha=0.15, label="Φ not convex")
    ax.axvline(x_star, color="C3", ls="--", lw=1)
    ax.set(xlabel="state x (dimensionless)", ylabel="x·GELU(x) − Φ(x) (dimensionless)",
           title="Layer energy of one GELU neuron: a bump at x*")
    ax.legend()
    return fig


# --- the chapter's auto-checked exercise ---------------------------------------------------------

def _reference_layernorm_lagrangian(x, gamma, delta, eps):
    """D γ sqrt(Var(x) + ε) + <δ, x> over the last axis, from the library. x: (..., D) -> (...,)."""
    return lg.LayerNorm(gamma=gamma, delta=delta, eps=eps).to(x.dtype)(x)


def check_layernorm_lagrangian(fn) -> None:
    """Check a reader's ``fn(x, gamma, delta, eps)``: the LayerNorm Lagrangian of eq. (ch3-ln-lagrangian).

    ``x`` has shape (..., D) (D neurons on the last axis), ``gamma`` and ``eps`` are floats,
    ``delta`` has shape (D,); ``fn`` must return L of shape (...,), built from torch operations
    so that autograd's gradient is LayerNorm. Prints one line (right, or what is wrong).
    """
    from ..exercises import assert_close, check

    def hint(got, want, variants, what):
        """Name a typical mistake when ``got`` matches one of ``variants`` instead of ``want``."""
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.isfinite(got).all():
            g = got.detach().to(torch.float64)
            if not torch.allclose(g, want, rtol=1e-5, atol=1e-6):
                for value, message in variants:
                    if torch.allclose(g, value, rtol=1e-5, atol=1e-6):
                        raise AssertionError(f"{what}: {message}")

    def test(f):
        gen = torch.Generator().manual_seed(0)
        D, gamma, eps = 8, 1.5, 0.2
        x = torch.randn(5, D, generator=gen, dtype=torch.float64)
        delta = torch.linspace(-0.3, 0.3, D, dtype=torch.float64)
        want = _reference_layernorm_lagrangian(x, gamma, delta, eps)                   # (5,)
        xr = x.clone().requires_grad_(True)
        got = f(xr, gamma, delta, eps)
        what = "L for 5 states of D = 8 neurons (γ = 1.5, ε = 0.2)"
        if isinstance(got, torch.Tensor) and got.shape != want.shape:
            raise AssertionError(f"{what}: expected shape {tuple(want.shape)} (one value per state: "
                                 f"reduce over the last axis, the neurons), got {tuple(got.shape)}.")
        xc = x - x.mean(dim=-1, keepdim=True)
        var, lin = xc.pow(2).mean(-1), (delta * x).sum(-1)
        hint(got, want, [
            (D * gamma * torch.sqrt(xc.pow(2).sum(-1) / (D - 1) + eps) + lin,
             "you used the unbiased variance (torch.var divides by D − 1 by default); Var(x) is the "
             "mean of the squared deviations: use unbiased=False or .pow(2).mean(-1)."),
            (gamma * torch.sqrt(var + eps) + lin, "the factor D (the number of neurons) is missing."),
            (D * gamma * torch.sqrt(var + eps), "the linear term ⟨δ, x⟩ is missing."),
            (D * gamma * torch.sqrt(var) + lin, "ε is missing under the square root."),
        ], what)
        assert_close(got, want, what, atol=1e-9, rtol=1e-9)
        if not got.requires_grad:
            raise AssertionError("autograd cannot differentiate your L (it does not depend on x through "
                                 "torch operations): avoid .detach(), .item(), numpy and float().")
        (grad,) = torch.autograd.grad(got.sum(), xr)
        layernorm = gamma * torch.nn.functional.layer_norm(x, (D,), eps=eps) + delta
        assert_close(grad, layernorm, "the autograd gradient ∇L, compared with LayerNorm", atol=1e-9, rtol=1e-9)
        x3 = torch.randn(2, 3, D, generator=gen, dtype=torch.float64)
        assert_close(f(x3, gamma, delta, eps), _reference_layernorm_lagrangian(x3, gamma, delta, eps),
                     "L for a batch of shape (2, 3, 8)", atol=1e-9, rtol=1e-9)

    return check("LayerNorm Lagrangian", test, fn)
