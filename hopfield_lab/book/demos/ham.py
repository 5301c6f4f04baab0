"""Demos of chapter 4 (Krotov's hierarchical associative memory).

* :func:`plane_network` -- a HAM whose visible layer has two neurons (so trajectories can be
  drawn in the plane) and whose hidden layer stores ``K`` memories.
* :func:`simulate` -- run a HAM's dynamics (Euler, RK4 or descent), optionally with an untied
  (asymmetric) feedback on some synapses (:meth:`hopfield_lab.ham.HAM.untie`), recording states
  and energies.
* :func:`energy_increases` -- how many steps of an energy trace went up
  (:func:`hopfield_lab.ham.count_increases`, summed).
* :func:`make_widget` -- the chapter's ipywidgets demo (method, step, tau of the hidden layer,
  symmetry breaking); :func:`plane_animation` -- its static twin, animated over step sizes.
* :func:`memory_network` -- the two-layer HAM whose adiabatic limit is a classical, dense or
  modern Hopfield network (a visible layer and one memory neuron per stored pattern);
  :func:`recall_fraction` -- how many corrupted cues it restores (:func:`recall_margins`: by how much).
* :func:`check_chain_energy` -- the auto-checked coding exercise (the energy of a three-layer chain,
  :func:`chain_network`).

The network code, the integrator and the counter are :mod:`hopfield_lab.ham`; this module only
builds small examples and draws them.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ... import lagrangians as lg
from ...ham import HAM, MAX_STEPS, METHODS, Dense, Layer, ReducedHAM, Trajectory, count_increases, steps_for
from .. import viz


# --- a network in the plane ----------------------------------------------------------------------

def plane_patterns(K: int = 3, radius: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    """``K`` stored patterns on a circle of ``radius`` in the plane, shape ``(K, 2)``."""
    ang = torch.arange(K, dtype=dtype) * (2 * math.pi / K) + math.pi / 2
    return radius * torch.stack([torch.cos(ang), torch.sin(ang)], -1)


def plane_network(K: int = 3, beta: float = 3.0, tau_h: float = 0.2, tau_v: float = 1.0,
                  radius: float = 1.5) -> HAM:
    """Visible layer ``"v"`` of 2 neurons (identity Lagrangian), hidden layer ``"h"`` of ``K``
    memory neurons (log-sum-exp Lagrangian, inverse temperature ``beta``) and the synapse ``"xi"``
    whose rows are the stored patterns (:func:`plane_patterns`), float64.

    In the adiabatic limit ``tau_h -> 0`` this is the modern Hopfield network of chapter 2 in
    two dimensions.
    """
    xi = plane_patterns(K, radius)
    return HAM(
        layers={"v": Layer(2, lg.Identity(), tau=tau_v), "h": Layer(K, lg.Softmax(beta=beta), tau=tau_h)},
        synapses={"xi": Dense("v", "h", weight=xi, learnable=False)},
    ).double()


def plane_initial_states(ham: HAM, n: int = 8, radius: float = 2.2) -> dict:
    """``n`` initial states: visible on a circle of ``radius`` (between the memories), hidden at 0."""
    ang = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n) + math.pi / n
    v = radius * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    xs = ham.init_states(batch=n)
    xs["v"] = v
    return xs


def simulate(ham: HAM, xs: dict, steps: int, dt: float, method: str = "euler",
             breaking: Optional[dict] = None) -> Trajectory:
    """Run the dynamics of ``ham`` from ``xs``, recording every state and the energy.

    Without ``breaking`` this is ``ham.run(..., record_energy=True, record_states=True)``.
    ``breaking = {synapse name: V}`` unties the feedback of those synapses
    (:meth:`hopfield_lab.ham.HAM.untie`): the ``pre`` layer of synapse ``W`` receives
    ``(W^T + V) g_post`` instead of ``W^T g_post``, with ``V`` in the layout of ``W^T``
    (``(N_pre, N_post)`` for a dense vector synapse). The energy recorded is then the tied
    network's ``E`` (:meth:`~hopfield_lab.ham.HAM.tied_energy`), which need not decrease.
    Methods: ``"euler"``, ``"rk4"`` (``tau``-weighted time steps ``dt``) and ``"descent"``
    (``x <- x - dt (x - I)``).

    Returns a :class:`hopfield_lab.ham.Trajectory` (``states[name]``: ``(steps+1, *B, *shape)``,
    ``energy``: ``(steps+1, *B)``). Raises ``ValueError`` for an unknown method or synapse, or a
    ``V`` of the wrong shape.
    """
    net = ham.untie(breaking) if breaking else ham
    return net.run(xs, steps=steps, dt=dt, method=method, record_energy=net.tied_energy, record_states=True,
                   max_abs=1e6)


def energy_increases(energy: torch.Tensor, rtol: Optional[float] = None) -> int:
    """Number of (step, sample) pairs where ``energy`` (shape ``(T, *B)``) went up: the total of
    :func:`hopfield_lab.ham.count_increases` (rounding noise is not counted; see its tolerance rule)."""
    return int(count_increases(energy, rtol).sum())


def rotation_breaking(ham: HAM, strength: float) -> dict:
    """An untied feedback for :func:`plane_network`: ``V = strength * (xi R)^T`` (shape ``(2, K)``)
    with ``R`` the rotation by 90 degrees, so the visible layer receives a rotated copy of the
    memories, ``V g = strength * sum_mu g_mu (xi_mu R)``."""
    W = ham.synapses["xi"].weight.detach()
    R = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=W.dtype)
    return {"xi": strength * (W @ R).mT}


def _draw_plane(axes, ham: HAM, traj: Trajectory, title: str) -> None:
    import numpy as np

    ax0, ax1 = axes
    ax0.clear()
    ax1.clear()
    # contour of the adiabatic (reduced) energy, a map of where the memories are
    red = ham.eliminate("h")
    u = torch.linspace(-2.6, 2.6, 81, dtype=torch.float64)
    U, W = torch.meshgrid(u, u, indexing="xy")
    E = red.energy({"v": torch.stack([U, W], -1)})
    ax0.contourf(U.numpy(), W.numpy(), E.numpy(), levels=20, cmap="Greys_r", alpha=0.6)
    v = traj.states["v"].numpy()  # (T, B, 2)
    v = np.clip(v, -2.6, 2.6)
    for b in range(v.shape[1]):
        ax0.plot(v[:, b, 0], v[:, b, 1], "-", color=f"C{b % 10}", lw=1.2)
        ax0.plot(v[0, b, 0], v[0, b, 1], "o", color=f"C{b % 10}", ms=4)
    pats = ham.synapses["xi"].weight.detach().numpy()
    ax0.plot(pats[:, 0], pats[:, 1], "*", color="gold", mec="k", ms=14, label="stored patterns")
    ax0.set(xlim=(-2.6, 2.6), ylim=(-2.6, 2.6), aspect="equal", xlabel="visible state $x_1$ (dimensionless)",
            ylabel="visible state $x_2$ (dimensionless)")
    ax0.set_title("trajectories over the adiabatic\nenergy (darker = lower)", fontsize=10)
    ax0.legend(loc="lower right", fontsize=8)
    t = traj.t.numpy()
    e = traj.energy.numpy()
    for b in range(e.shape[1]):
        ax1.plot(t, e[:, b], color=f"C{b % 10}", lw=1)
    ax1.set(xlabel="time t (units of $\\tau_v$; descent: step number)", ylabel="network energy E (dimensionless)")
    ax1.set_title("energy of the full network", fontsize=10)
    axes[0].figure.suptitle(title, fontsize=10)


def plane_run(method: str = "euler", dt: float = 0.05, tau_h: float = 0.2, breaking: float = 0.0,
              beta: float = 3.0, T: float = 8.0, max_steps: int = 2000) -> tuple[HAM, Trajectory, int]:
    """Build :func:`plane_network`, run it for time ``T`` (descent: ``T/dt`` steps, capped at
    ``max_steps``) and return ``(ham, trajectory, number of energy increases)``."""
    ham = plane_network(beta=beta, tau_h=tau_h)
    xs = plane_initial_states(ham)
    steps = min(max_steps, steps_for(T, dt, what="T", max_steps=max(max_steps, MAX_STEPS)))
    br = rotation_breaking(ham, breaking) if breaking > 0 else None
    traj = simulate(ham, xs, steps, dt, method, br)
    return ham, traj, energy_increases(traj.energy)


def _title(method, dt, tau_h, breaking, ups, traj):
    return (f"{method}, step {dt:.3g}, $\\tau_h$ = {tau_h:.3g}, asymmetry {breaking:.3g}:\n"
            f"{ups} of {traj.energy[1:].numel()} steps raised the energy")


def make_widget():
    """The chapter's interactive demo: a HAM with a 2-neuron visible layer and 3 memories.

    Controls: integration method, step size, the hidden layer's time constant ``tau_h`` and the
    strength of an untied (asymmetric) feedback. Left: trajectories of the visible state over
    the adiabatic energy; right: the full network's energy over time, with the number of steps
    that raised it in the title.

    Returns an ``ipywidgets.VBox`` with extra attributes ``controls`` (dict of control widgets),
    ``update()`` (the callback) and ``last`` (dict with ``traj``, ``increases`` and the settings).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    controls = {
        "method": w.Dropdown(options=list(METHODS), value="euler", description="method"),
        "dt": w.FloatLogSlider(value=0.05, base=10, min=-2, max=0.3, step=0.05, description="step dt"),
        "tau_h": w.FloatLogSlider(value=0.2, base=10, min=-2, max=0.5, step=0.05, description="τ_h"),
        "breaking": w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="asymmetry"),
    }
    out = w.Output()
    box = w.VBox([w.HBox([controls["method"], controls["dt"]]), w.HBox([controls["tau_h"], controls["breaking"]]), out])
    box.controls = controls
    box.last = None

    def update(*_):
        p = {k: c.value for k, c in controls.items()}
        try:
            ham, traj, ups = plane_run(**p)
            err = None
        except Exception as e:  # the HAM's divergence error: show it instead of a trace-back
            ham, traj, ups, err = None, None, None, e
        with out:
            out.clear_output(wait=True)
            if err is not None:
                print(f"The dynamics diverged: {err}")
            else:
                fig, axes = viz.panels(2, row_height=3.6)
                _draw_plane(axes, ham, traj, _title(p["method"], p["dt"], p["tau_h"], p["breaking"], ups, traj))
                plt.show()
                plt.close(fig)
        box.last = dict(p, traj=traj, increases=ups, error=err)

    from ..viz import connect

    return connect(box, controls, update)


def plane_animation(dts, method: str = "euler", tau_h: float = 0.2, breaking: float = 0.0, dpi: int = 100):
    """Static twin of :func:`make_widget`: one frame per step size in ``dts``.

    Returns ``IPython.display.HTML`` (a jshtml player, via :func:`hopfield_lab.viz.animate`).
    """
    runs = [plane_run(method, float(dt), tau_h, breaking) for dt in dts]
    fig, axes = viz.panels(2, row_height=3.6)

    def update(i):
        ham, traj, ups = runs[i]
        _draw_plane(axes, ham, traj, _title(method, float(dts[i]), tau_h, breaking, ups, traj)
                    + f"   [frame {i + 1}/{len(dts)}]")

    alt = (f"Player looping over {len(dts)} step sizes from {float(dts[0]):.3g} to {float(dts[-1]):.3g} "
           f"({method}, hidden time constant {tau_h:g}). Left: trajectories of the two visible neurons "
           "over a grey contour map of the adiabatic energy, each starting at a dot, with the three "
           "stored patterns as gold stars; right: the full network's energy against time. The title "
           "counts the steps at which an energy rose, frame by frame.")
    return viz.animate(update, len(runs), fig, alt=alt, interval=700, dpi=dpi, default_mode="loop")


# --- two-layer memories: the classical, dense and modern Hopfield networks as HAMs ----------------

def memory_network(patterns: torch.Tensor, hidden: str | lg.Lagrangian, scale: float = 1.0,
                   visible: str | lg.Lagrangian = "tanh", tau_h: float = 0.1) -> HAM:
    """A visible layer ``"v"`` of N neurons and a hidden layer ``"h"`` with one neuron per stored
    pattern, joined by the synapse ``"xi"`` with weight ``scale * patterns`` (shape ``(K, N)``).

    Eliminating ``"h"`` (``ham.eliminate("h")``) leaves the energy
    ``<x, g> - L_v(x) - L_h(scale * patterns @ g)``: with ``hidden="identity"`` the continuous
    Hopfield network with weights ``scale² ξᵀξ``, with ``RePU(n)`` a dense associative memory,
    with ``Softmax(beta)`` the modern Hopfield network.
    """
    K, N = patterns.shape
    w = scale * patterns.to(torch.float64)
    return HAM(
        layers={"v": Layer(N, visible, tau=1.0), "h": Layer(K, hidden, tau=tau_h)},
        synapses={"xi": Dense("v", "h", weight=w, learnable=False)},
    ).double()


def recall_margins(reduced: ReducedHAM, targets: torch.Tensor, cues: torch.Tensor, steps: int = 200,
                   dt: float = 0.1) -> torch.Tensor:
    """How clearly each cue is recalled: ``min_i targets[b, i] * g_i`` of the final visible activation
    ``g`` after ``steps`` Euler steps of the reduced (adiabatic) dynamics started at ``x = cues[b]``.

    ``cues`` and ``targets`` have shape ``(B, N)`` (row ``b`` of ``cues`` is a corrupted copy of the
    ±1 pattern ``targets[b]``); returns ``(B,)``. Cue ``b`` is recalled exactly when its margin is
    positive; a margin far from 0 means that no rounding can change the verdict."""
    if cues.shape != targets.shape:
        raise ValueError(f"cues {tuple(cues.shape)} and targets {tuple(targets.shape)} must have the same shape")
    traj = reduced.run({"v": cues.to(torch.float64)}, steps=steps, dt=dt, method="euler", max_abs=None)
    g = reduced.ham.layers["v"].activation(traj.x["v"])
    return (g * targets.to(g.dtype)).amin(dim=-1)


def recall_fraction(reduced: ReducedHAM, targets: torch.Tensor, cues: torch.Tensor, steps: int = 200,
                    dt: float = 0.1) -> float:
    """Fraction of ``cues`` (shape ``(B, N)``, row ``b`` a corrupted copy of ``targets[b]``, a ±1
    pattern) whose final visible activation has exactly the signs of its target, after ``steps``
    Euler steps of the reduced (adiabatic) dynamics started at ``x = cue``: the fraction of
    positive :func:`recall_margins`."""
    return float((recall_margins(reduced, targets, cues, steps, dt) > 0).double().mean())


# --- coding exercise: the energy of a three-layer chain -------------------------------------------

def chain_network(sizes=(7, 5, 4), seed: int = 0) -> HAM:
    """A three-layer chain ``v - h1 - h2`` like section 4.1's (tanh, softmax(beta = 2), ReLU), of
    ``sizes`` neurons, with synapses ``"W1"`` (``xi^(h1,v)``, shape ``(N_h1, N_v)``) and ``"W2"``
    (``xi^(h2,h1)``, ``(N_h2, N_h1)``), float64."""
    gen = torch.Generator().manual_seed(seed)
    n_v, n_1, n_2 = sizes
    return HAM(
        layers={"v": Layer(n_v, lg.Tanh(), tau=1.0), "h1": Layer(n_1, lg.Softmax(beta=2.0), tau=0.5),
                "h2": Layer(n_2, lg.ReLU(), tau=0.3)},
        synapses={"W1": Dense("v", "h1", std=1.0, generator=gen), "W2": Dense("h1", "h2", std=1.0, generator=gen)},
    ).double()


def check_chain_energy(fn) -> None:
    """Check a reader's ``fn(xs, W1, W2, lagrangians)``: the energy eq. (ch4-energy) of the chain
    ``v - h1 - h2``.

    ``xs`` is a dict of states ``{"v": (B, N_v), "h1": (B, N_h1), "h2": (B, N_h2)}``,
    ``W1 = xi^(h1,v)`` has shape ``(N_h1, N_v)`` and ``W2 = xi^(h2,h1)`` ``(N_h2, N_h1)``, and
    ``lagrangians`` is a dict of the three layers' Lagrangians (``L(x)``: ``(B,)``,
    ``L.activation(x)``: ``(B, N)``). ``fn`` must return ``E`` of shape ``(B,)``; it is compared
    with :meth:`hopfield_lab.ham.HAM.energy` of a chain of other sizes than the chapter's.
    Prints one line (right, or what is wrong).
    """
    from ..exercises import assert_close, check, name_mistake

    def test(f):
        net = chain_network(sizes=(7, 5, 4), seed=3)
        gen = torch.Generator().manual_seed(4)
        xs = net.init_states(batch=6, kind="randn", std=1.5, generator=gen)
        W1, W2 = (net.synapses[k].weight.detach().clone() for k in ("W1", "W2"))
        lags = {n: net.layers[n].lagrangian for n in net.layer_names}
        with torch.no_grad():
            want = net.energy(xs)                                           # (6,)
            got = f({k: v.clone() for k, v in xs.items()}, W1.clone(), W2.clone(), lags)
        what = "E for 6 states of a chain with 7, 5 and 4 neurons"
        g = {n: lags[n].activation(x) for n, x in xs.items()}
        layer = sum((xs[n] * g[n]).sum(-1) - lags[n](xs[n]) for n in xs)         # Legendre terms
        lagr = sum(lags[n](xs[n]) for n in xs)
        c1 = (g["h1"] * (g["v"] @ W1.T)).sum(-1)                              # <g^h1, W1 g^v>
        c2 = (g["h2"] * (g["h1"] @ W2.T)).sum(-1)
        c1x = (xs["h1"] * (xs["v"] @ W1.T)).sum(-1)
        c2x = (xs["h2"] * (xs["h1"] @ W2.T)).sum(-1)
        name_mistake(got, want, [
            (layer - 2 * (c1 + c2), "each pair of layers is coupled once: −⟨g^h1, W1 g^v⟩ − "
                                    "⟨g^h2, W2 g^h1⟩, not once per direction."),
            (layer + c1 + c2, "the coupling terms enter with a minus sign."),
            (-lagr - c1 - c2, "a layer's energy is the Legendre term ⟨x, g⟩ − L(x), not −L(x)."),
            (lagr - c1 - c2, "a layer's energy is ⟨x, g⟩ − L(x), not L(x)."),
            (layer - c1x - c2x, "the synapses couple activations g = ∇L(x), not the states x."),
            (layer - c1, "the coupling of h1 and h2 through W2 is missing."),
            (layer - c2, "the coupling of v and h1 through W1 is missing."),
            (-c1 - c2, "the layer energies ⟨x, g⟩ − L(x) are missing."),
        ], what, atol=1e-9, rtol=1e-9)
        assert_close(got, want, what, atol=1e-9, rtol=1e-9)

    return check("Energy of the three-layer chain", test, fn)
