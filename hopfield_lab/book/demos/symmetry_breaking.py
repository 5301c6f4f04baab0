"""Demos of chapter 7 (symmetry breaking in the dynamics of the continuous parallelized Mixer).

* :func:`run` -- integrate the small or large demo system at a given symmetry-breaking strength and
  return trajectories, energy, pseudo-energy, speed and the number of energy-increasing steps.
* :func:`draw_run` / :func:`plot_run` / :func:`plot_runs` -- trajectories, (pseudo-)energy and speed in
  three panels (one row per run).
* :func:`make_widget` -- the chapter's ipywidgets demo (strength of the breaking part, system, seed).
* :func:`strength_player` -- its static twin: the same panels, one frame per strength.
* :func:`landscape_figure` -- the 2-D energy landscape of the S=2, C=1 system with the flow field.
* :func:`ensemble_fraction` / :func:`plot_ensemble` -- over many random weight draws: how often the
  pseudo-energy increases, and how often visibly.
* :func:`summarize` -- a run reduced to what the figures show (JSON-able: committed full-size runs).
* :func:`plot_small_tied`, :func:`plot_small_broken` -- the figures of the 2-neuron system (section 7.2).
* :func:`official_energy` -- the quantity the official demo notebook plots as its energy.
* :func:`check_flow` -- the auto-checked coding exercise (the broken flow, eq. (ch7-flow)).
* :func:`full_size_large` -- the full-size study ``ch07_large`` (``benchmarks/full_size.py``).
* :func:`estimate_seconds` -- the expected time of a run, from a short run timed on this machine.

The ODE itself lives in :mod:`hopfield_lab.odes` (a view of the HAM core: its integrator and its
counter of energy increases). The *strength* ``s`` scales the breaking radii of the paper's
asymmetric set-up: ``|V_s| = 1.5 s``, ``|V_c| = 4.0 s``; ``s = 0`` is the symmetric system with
the same ``A`` and ``B``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ... import odes
from ...ham import steps_for
from .. import viz

#: the paper's set-ups (Sec. 6.2; the official demo notebook of github.com/Toshihiro-Ota/paramixer):
#: sizes, symmetric radii and the breaking radii at strength 1
SYSTEMS = {
    "small": dict(sizes=(2, 1, 3, 2), radii=(1.0, 2.5), breaking=(1.5, 4.0), x0=(0.5, 0.5)),
    "large": dict(sizes=(4, 8, 20, 160), radii=(1.0, 2.5), breaking=(1.5, 4.0), x0=(1.0, 2.5)),
}


def make_system(size: str = "large", strength: float = 1.0, seed: int = 0, pooled: bool = False,
                n_systems: Optional[int] = None) -> odes.MixerODE:
    """The demo system ``size`` ("small" or "large") with breaking radii ``strength * (1.5, 4.0)``.

    The weights ``A, B`` depend only on ``seed``, not on ``strength``.
    """
    if size not in SYSTEMS:
        raise ValueError(f"size must be one of {sorted(SYSTEMS)}, got {size!r}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    cfg = SYSTEMS[size]
    S, C, Ns, Nc = cfg["sizes"]
    base = odes.MixerODE.random(S, C, Ns, Nc, radii=cfg["radii"], breaking=cfg["breaking"], seed=seed,
                                pooled=pooled, n_systems=n_systems)
    return base.with_breaking_scale(float(strength))


def run(strength: float = 1.0, size: str = "large", seed: int = 0, batch: int = 10, t_end: float = 10.0,
        dt: float = 0.01, method: str = "rk4", pooled: bool = False, x0_seed: int = 1,
        save_every: int = 1) -> dict:
    """Integrate one demo system from ``batch`` random initial states.

    Initial states: ``X0 ~ N(0.5, 0.5^2)`` for the small system and ``N(1.0, 2.5^2)`` for the large
    one, drawn with ``x0_seed`` (the same for every strength). Returns a dict with ``t (T,)``,
    ``x (T, batch, S, C)``, ``energy (T, batch)`` (eq. (2) of the symmetric part),
    ``pseudo (T, batch)`` (the paper's pseudo-energy), ``speed (T, batch)`` = ``|dX/dt|``,
    ``increases (batch,)`` and ``pseudo_increases (batch,)`` (numbers of increasing steps), and the
    settings (``system`` included).
    """
    system = make_system(size, strength, seed, pooled)
    mean, std = SYSTEMS[size]["x0"]
    x0 = odes.initial_states(system, batch=batch, mean=mean, std=std, seed=x0_seed)
    t, xs = odes.integrate(system, x0, t_end=t_end, dt=dt, method=method, save_every=save_every)
    E, P = system.energy(xs), system.pseudo_energy(xs)
    speed = torch.linalg.matrix_norm(system.velocity(xs))
    return dict(t=t, x=xs, energy=E, pseudo=P, speed=speed, increases=odes.count_increases(E),
                pseudo_increases=odes.count_increases(P), strength=float(strength), size=size,
                seed=seed, dt=dt, method=method, system=system)


def summarize(r: dict, times: Optional[Sequence[float]] = None, n_show: int = 4, digits: int = 6) -> dict:
    """A :func:`run` result reduced to what :func:`draw_run` shows, as plain lists (JSON-able).

    ``times``: the recorded times to keep (the nearest recorded point to each; default: all).
    Keeps ``t (T',)``, ``x_shown (T', n_show)`` (the first ``n_show`` entries of initial state 1,
    named in ``x_labels``), ``pseudo (T', batch)`` and ``speed (T', batch)``, rounded to ``digits``
    significant digits, and the counts ``increases``, ``pseudo_increases`` and ``n_steps``
    (recorded steps x trajectories), which stay those of the full-resolution trace.
    """
    if "x_shown" in r:          # already a summary
        return r
    t = r["t"]
    if times is None:
        idx = torch.arange(len(t))
    else:
        want = torch.as_tensor(list(times), dtype=t.dtype)
        idx = torch.unique((t[None, :] - want[:, None]).abs().argmin(dim=1))
    S, C = r["x"].shape[-2:]
    entries = [(i % S, (i // S) % C) for i in range(min(n_show, S * C))]

    def rounded(a: torch.Tensor) -> list:
        return np.vectorize(lambda v: float(f"{v:.{digits}g}"), otypes=[float])(a.numpy()).tolist()

    su, sc = r["system"].breaking_norms
    return dict(
        t=rounded(t[idx]), x_shown=rounded(torch.stack([r["x"][idx, 0, i, j] for i, j in entries], dim=-1)),
        x_labels=[f"$X_{{{i + 1}{j + 1}}}$" for i, j in entries],
        pseudo=rounded(r["pseudo"][idx]), speed=rounded(r["speed"][idx]),
        increases=r["increases"].tolist(), pseudo_increases=r["pseudo_increases"].tolist(),
        n_steps=(len(t) - 1) * int(r["x"].shape[1]),
        strength=r["strength"], size=r["size"], seed=r["seed"], dt=r["dt"], method=r["method"],
        breaking_norms=[su, sc], t_end=float(t[-1]))


def draw_run(axes, r: dict, n_show: int = 4, label: str = "") -> None:
    """Draw a :func:`run` result (or its :func:`summarize` summary) into three axes: the state of
    initial condition 1, the pseudo-energy of every trajectory, and the speed ``|dX/dt|``.

    ``label`` is prepended to the figure title (e.g. "committed full-size run").
    """
    for ax in axes:
        ax.clear()
    s = summarize(r, n_show=n_show)
    t = np.asarray(s["t"])
    x = np.asarray(s["x_shown"])
    pseudo, speed = np.asarray(s["pseudo"]), np.asarray(s["speed"])
    batch = pseudo.shape[1]
    for k, name in enumerate(s["x_labels"]):
        axes[0].plot(t, x[:, k], color=f"C{k}", label=name)
    axes[0].legend(fontsize=8, loc="best")
    axes[0].set(xlabel=r"time t (units of $\tau_v$)", ylabel="X (dimensionless)")
    axes[0].set_title("state of initial condition 1", fontsize=10)
    for b in range(batch):
        axes[1].plot(t, pseudo[:, b], lw=1)
    n_up = int((np.asarray(s["pseudo_increases"]) > 0).sum())
    axes[1].set(xlabel=r"time t (units of $\tau_v$)", ylabel="Ẽ (= E when s = 0;\ndimensionless)")
    axes[1].set_title(f"pseudo-energy: {n_up}/{batch} runs go up somewhere", fontsize=10)
    for b in range(batch):
        axes[2].semilogy(t, np.clip(speed[:, b], 1e-16, None), lw=1)
    axes[2].set(xlabel=r"time t (units of $\tau_v$)", ylabel=r"|dX/dt| ($1/\tau_v$)")
    axes[2].set_title("speed |dX/dt|", fontsize=10)
    su, sc = s["breaking_norms"]
    head = f"{label}: " if label else ""
    axes[0].figure.suptitle(f"{head}{s['size']} system, breaking strength s = {s['strength']:.2f} "
                            f"($|V_s|$ = {su:.2f}, $|V_c|$ = {sc:.2f});\n"
                            f"{int(sum(s['pseudo_increases']))} increasing steps of {s['n_steps']}", fontsize=10)


def plot_run(r: dict, axes=None, label: str = ""):
    """Draw :func:`run`'s result or its :func:`summarize` summary in a new figure of three panels,
    two over one (or into ``axes``); returns the figure."""
    if axes is None:
        _, axes = viz.panels(3, row_height=2.8)
    draw_run(axes, r, label=label)
    return axes[0].figure


def plot_runs(runs: Sequence[dict], labels: Sequence[str] = ()):
    """Several :func:`run` results or summaries, one row of :func:`draw_run`'s three panels each
    (a subfigure with its own title per row); returns the figure."""
    import matplotlib.pyplot as plt

    labels = list(labels) or [""] * len(runs)
    if len(labels) != len(runs):
        raise ValueError(f"got {len(runs)} runs but {len(labels)} labels")
    fig = plt.figure(figsize=(viz.MAX_WIDTH_IN, 5.8 * len(runs)), constrained_layout=True)
    rows = fig.subfigures(len(runs), 1) if len(runs) > 1 else [fig]
    for row, r, label in zip(rows, runs, labels):
        gs = row.add_gridspec(2, 2)   # viz.panels' layout: two panels over a third one
        draw_run([row.add_subplot(gs[0, 0]), row.add_subplot(gs[0, 1]), row.add_subplot(gs[1, :])], r, label=label)
    return fig


def plot_small_tied(t: torch.Tensor, xs: torch.Tensor, E: torch.Tensor):
    """Trajectories ``xs (T, batch, 2, 1)`` of the 2-neuron system and their energies ``E (T, batch)``
    at times ``t (T,)``, in two panels; returns the figure."""
    fig, axes = viz.panels(2, row_height=3.2)
    for b in range(xs.shape[1]):
        axes[0].plot(t, xs[:, b, 0, 0], color="C0", lw=0.8)
        axes[0].plot(t, xs[:, b, 1, 0], color="C1", lw=0.8)
        axes[1].plot(t, E[:, b], lw=1)
    axes[0].plot([], [], color="C0", label="$x_1$")
    axes[0].plot([], [], color="C1", label="$x_2$")
    axes[0].legend()
    axes[0].set(xlabel=r"time t (units of $\tau_v$)", ylabel="state (dimensionless)")
    axes[0].set_title(f"Small system, tied weights:\n{xs.shape[1]} trajectories", fontsize=10)
    axes[1].set(xlabel=r"time t (units of $\tau_v$)", ylabel="E (dimensionless)")
    axes[1].set_title("Energy E(X(t))\nalong the tied flow", fontsize=10)
    return fig


def plot_small_broken(t: torch.Tensor, E: torch.Tensor, P: torch.Tensor, system: odes.MixerODE,
                      x0: torch.Tensor, half_width: float = 0.6):
    """The broken 2-neuron system: ``E (T, batch)`` and the pseudo-energy ``P (T, batch)`` over
    ``t (T,)``, and the landscape of the tied part with the flow and the trajectories from
    ``x0 (batch, 2, 1)`` (:func:`landscape_figure`); returns the figure."""
    fig, axes = viz.panels(3, row_height=3.0)
    for b in range(E.shape[1]):
        axes[0].plot(t, E[:, b], lw=1)
        axes[1].plot(t, P[:, b], lw=1)
    axes[0].set(xlabel=r"time t (units of $\tau_v$)", ylabel="E (dimensionless)")
    axes[0].set_title("E (tied-part energy)\nalong the broken flow", fontsize=10)
    axes[1].set(xlabel=r"time t (units of $\tau_v$)", ylabel="Ẽ (dimensionless)")
    axes[1].set_title("pseudo-energy Ẽ\nalong the broken flow", fontsize=10)
    landscape_figure(system, x0, half_width=half_width, center=(0.0, 0.0), ax=axes[2],
                     title="the broken flow climbs onto the ridge")
    return fig


def make_widget(size: str = "large", strength: float = 1.0, seed: int = 0, dt: float = 0.01):
    """The chapter's interactive demo: the strength of the symmetry-breaking part.

    Returns an ``ipywidgets.VBox``; attributes ``controls`` (dict: ``strength``, ``size``, ``seed``),
    ``update()`` (the callback, run on every change) and ``last`` (the latest :func:`run` dict).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    controls = {
        "strength": w.FloatSlider(value=strength, min=0.0, max=2.0, step=0.1, description="strength s",
                                  continuous_update=False),
        "size": w.Dropdown(options=list(SYSTEMS), value=size, description="system"),
        "seed": w.IntSlider(value=seed, min=0, max=20, description="weights seed", continuous_update=False),
    }
    out = w.Output()
    box = w.VBox([w.HBox([controls["strength"], controls["size"], controls["seed"]]), out])
    box.controls = controls
    box.last = None

    def update(*_):
        r = run(controls["strength"].value, controls["size"].value, controls["seed"].value, dt=dt)
        with out:
            out.clear_output(wait=True)
            fig = plot_run(r)
            plt.show()
            plt.close(fig)
        box.last = r

    from ..viz import connect

    return connect(box, controls, update)


def strength_player(strengths: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0), size: str = "large",
                    seed: int = 0, dt: float = 0.01, interval: int = 700, dpi: int = 100):
    """Static twin of :func:`make_widget`: one frame per strength, as a JavaScript player.

    Returns ``(player, runs)``: an ``IPython.display.HTML`` player and the list of :func:`run` dicts.
    """
    runs = [run(s, size, seed, dt=dt) for s in strengths]
    fig, axes = viz.panels(3, row_height=2.8)
    lims = [(min(float(r[k].min()) for r in runs), max(float(r[k].max()) for r in runs)) for k in ("x", "pseudo")]

    def update(i):
        draw_run(axes, runs[i])
        for ax, (lo, hi) in zip(axes[:2], lims):
            pad = 0.05 * (hi - lo + 1e-9)
            ax.set_ylim(lo - pad, hi + pad)
        return []

    update(0)
    alt = (f"Player over the symmetry-breaking strength s = {', '.join(f'{s:g}' for s in strengths)} of the "
           f"{size} system. Top left: the state of one trajectory against time; top right: the "
           "pseudo-energy of every trajectory against time; bottom: their speeds on a log scale. The "
           "titles count the trajectories and the steps whose pseudo-energy rises, frame by frame.")
    return viz.animate(update, len(runs), fig, alt=alt, interval=interval, default_mode="once", dpi=dpi), runs


def landscape_figure(system: odes.MixerODE, x0: Optional[torch.Tensor] = None, half_width: float = 0.02,
                     center: tuple[float, float] = (0.0, 0.0), t_end: float = 10.0, dt: float = 1e-3,
                     n_grid: int = 161, title: str = "", ax=None):
    """The energy (2) of an S=2, C=1 system over ``(x1, x2)`` with its flow field and trajectories.

    ``x0 (batch, 2, 1)`` are initial states to integrate and draw (none: only the landscape).
    The arrows show ``dX/dt``: for symmetric weights they cross the level lines downhill (they are
    ``-J dE/dX`` with the PSD ``J``); with a breaking part they need not. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.6), constrained_layout=True)
    cx, cy = center
    g1 = torch.linspace(cx - half_width, cx + half_width, n_grid, dtype=torch.float64)
    g2 = torch.linspace(cy - half_width, cy + half_width, n_grid, dtype=torch.float64)
    E = odes.energy_landscape(system, g1, g2)
    cs = ax.contourf(g1.numpy(), g2.numpy(), E.numpy(), 30, cmap="viridis")
    ax.figure.colorbar(cs, ax=ax, label="E (dimensionless)")
    q = torch.linspace(-half_width, half_width, 13, dtype=torch.float64)
    Q1, Q2 = torch.meshgrid(q + cx, q + cy, indexing="xy")
    V = system.velocity(torch.stack([Q1, Q2], -1).unsqueeze(-1))[..., 0]
    ax.quiver(Q1.numpy(), Q2.numpy(), V[..., 0].numpy(), V[..., 1].numpy(), color="w", alpha=0.7, width=0.004)
    if x0 is not None:
        _, xs = odes.integrate(system, x0, t_end=t_end, dt=dt)
        for b in range(x0.shape[0]):
            ax.plot(xs[:, b, 0, 0].numpy(), xs[:, b, 1, 0].numpy(), color="C1", lw=1)
            ax.plot(float(xs[0, b, 0, 0]), float(xs[0, b, 1, 0]), "o", color="C1", ms=3)
            ax.plot(float(xs[-1, b, 0, 0]), float(xs[-1, b, 1, 0]), "*", color="r", ms=8)
    ax.set(xlim=(cx - half_width, cx + half_width), ylim=(cy - half_width, cy + half_width),
           xlabel="$x_1$ (dimensionless)", ylabel="$x_2$ (dimensionless)", title=title or "energy landscape")
    return ax.figure


#: a trajectory's pseudo-energy rises *visibly* when its total rise exceeds this share of its range
VISIBLE = 0.01


def increase_shares(E: torch.Tensor) -> dict:
    """Shares over the trajectories of an energy trace ``E (T, *batch)`` (time first).

    ``frac_runs``: trajectories with at least one increasing step (:func:`hopfield_lab.odes.count_increases`);
    ``frac_steps``: the mean share of increasing steps; ``frac_visible``: trajectories whose total
    rise, the sum of the positive steps, exceeds :data:`VISIBLE` times the range ``max E - min E``
    of their trace (a rise that a plot of the trace can show).
    """
    inc = odes.count_increases(E)
    rise = E.diff(dim=0).clamp_min(0).sum(dim=0)
    span = E.amax(dim=0) - E.amin(dim=0)
    return dict(frac_runs=float((inc > 0).double().mean()), frac_steps=float(inc.double().mean() / (E.shape[0] - 1)),
                frac_visible=float((rise > VISIBLE * span).double().mean()))


def _ensemble_traces(strengths: Sequence[float], size: str, n_systems: int, batch: int, t_end: float, dt: float,
                     seed: int, pseudo: bool = True):
    """Yield ``(strength, trace (T, n_systems, batch), final speed (n_systems, batch))`` per strength."""
    mean, std = SYSTEMS[size]["x0"]
    steps = steps_for(t_end, dt)  # one line for dt=0, NaN or a tiny dt (step cap)
    for s in strengths:
        system = make_system(size, s, seed, n_systems=n_systems)
        x0 = odes.initial_states(system, batch=batch, mean=mean, std=std, seed=seed + 1)
        energy = system.reduced.pseudo_energy if pseudo else system.reduced.tied_energy
        traj = system.reduced.run({"x": x0}, steps, dt, method="rk4", record_energy=energy, max_abs=None)
        yield s, traj.energy, torch.linalg.matrix_norm(system.velocity(traj.x["x"]))


def ensemble_fraction(strengths: Sequence[float], size: str = "large", n_systems: int = 16, batch: int = 8,
                      t_end: float = 10.0, dt: float = 0.01, seed: int = 100, pseudo: bool = True) -> dict:
    """Over ``n_systems`` random weight draws (x ``batch`` initial states each) per strength, RK4 with
    step ``dt`` up to ``t_end``: the shares of :func:`increase_shares` of the (pseudo-)energy.

    Returns a dict of NumPy arrays ``strengths``, ``frac_runs``, ``frac_steps``, ``frac_visible``
    (one entry per strength), ``final_speed`` (the median ``|dX/dt|`` at ``t_end``), and ``n_runs``
    (int) and ``t_end``. The same weights ``A, B`` and initial states are used at every strength.
    """
    rows = []
    for _, E, speed in _ensemble_traces(strengths, size, n_systems, batch, t_end, dt, seed, pseudo):
        rows.append({**increase_shares(E), "final_speed": float(speed.median())})
    out = {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
    return dict(strengths=np.asarray(strengths, dtype=float), **out, n_runs=n_systems * batch, t_end=float(t_end))


def plot_ensemble(ens: dict, ax=None, title: str = ""):
    """Draw :func:`ensemble_fraction`'s shares (in %) against the breaking strength; returns the figure.

    ``ens`` may also be a committed ensemble (lists instead of arrays)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4), constrained_layout=True)
    s = np.asarray(ens["strengths"], dtype=float)
    ax.plot(s, 100 * np.asarray(ens["frac_runs"]), "o-", label="trajectories with an increase")
    ax.plot(s, 100 * np.asarray(ens["frac_visible"]), "^-", label=f"… rising by > {VISIBLE:.0%} of its range")
    ax.plot(s, 100 * np.asarray(ens["frac_steps"]), "s--", label="steps that increase")
    ax.set(xlabel="breaking strength s (radii 1.5 s, 4 s)", ylabel="share (%)", ylim=(-3, 103),
           title=title or f"{ens['n_runs']} trajectories per strength, t ≤ {ens['t_end']:g}")
    ax.legend(fontsize=8)
    return ax.figure


def official_energy(system: odes.MixerODE, x: torch.Tensor) -> torch.Tensor:
    """The quantity that the official demo notebook plots as its energy, for states ``(..., S, C)``;
    returns ``(...)``.

    The notebook (github.com/Toshihiro-Ota/paramixer, ``demo/demo_asymmixer.ipynb``) writes the
    visible Lagrangian as ``sqrt(sum (X - mean)^2) = sqrt(D) std(X)`` instead of the LayerNorm
    Lagrangian ``L_v = D sqrt(Var(X) + eps)`` whose gradient is ``G``; everything else is the
    pseudo-energy (:meth:`hopfield_lab.odes.MixerODE.pseudo_energy`). So this is
    ``pseudo_energy(X) + D sqrt(Var + eps) - sqrt(D) std(X)``, the pseudo-energy plus
    ``(D - sqrt(D)) std(X)`` up to ``O(eps)``. With ``pooled=True`` (the notebook's coupling) it is
    the notebook's formula term by term.
    """
    D = x.shape[-1] * x.shape[-2]
    var = x.var(dim=(-2, -1), unbiased=False)
    return system.pseudo_energy(x) + D * torch.sqrt(var + system.eps) - D ** 0.5 * torch.sqrt(var)


def estimate_seconds(probe: Callable[[], object], scale: float) -> float:
    """Expected wall time of a long computation: ``probe()`` (a small piece of it, e.g. 20 steps)
    timed now on this machine, times ``scale`` (how many such pieces the long run does)."""
    import time

    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    start = time.perf_counter()
    probe()
    return (time.perf_counter() - start) * scale


# ----------------------------------------------------------------------------------------------
# the auto-checked coding exercise
# ----------------------------------------------------------------------------------------------
def _reference_flow(X, A, B, V_s, V_c, eps=1e-5):
    """dX/dt of eq. (ch7-flow), written out: ``X (batch, S, C) -> (batch, S, C)``."""
    G = torch.nn.functional.layer_norm(X, X.shape[-2:], eps=eps)            # over tokens x channels
    hs = torch.nn.functional.gelu(torch.einsum("as,bsc->bac", A, G))        # (batch, Ns, C)
    hc = torch.nn.functional.gelu(torch.einsum("bsc,nc->bsn", G, B))        # (batch, S, Nc)
    return (A.T + V_s) @ hs + hc @ (B + V_c.T) - X


def check_flow(fn) -> None:
    """Check a reader's ``fn(X, A, B, V_s, V_c, eps)``: the broken flow, eq. (ch7-flow).

    ``X (batch, S, C)``, ``A (Ns, S)``, ``B (Nc, C)``, ``V_s (S, Ns)``, ``V_c (C, Nc)`` (the layouts
    of ``A.T`` and ``B.T``), a float ``eps``; ``fn`` returns ``dX/dt (batch, S, C)``. It is compared
    with :meth:`hopfield_lab.odes.MixerODE.velocity` on a system with ``S != C`` (so that a wrong
    axis shows). Prints one line (right, or what is wrong) and returns None.
    """
    from ..exercises import assert_close, check

    def test(f):
        S, C, Ns, Nc, eps = 3, 5, 4, 6, 1e-5
        system = odes.MixerODE.random(S, C, Ns, Nc, radii=(1.0, 2.5), breaking=(1.5, 4.0), seed=7, eps=eps)
        X = odes.initial_states(system, batch=6, mean=1.0, std=2.5, seed=8)
        want = system.velocity(X)
        what = f"dX/dt for 6 states of S = {S} tokens, C = {C} channels"
        try:
            got = f(X.clone(), system.A, system.B, system.V_s, system.V_c, eps)
        except NotImplementedError:
            raise
        except RuntimeError as err:                    # e.g. shapes that do not fit
            raise AssertionError(f"{what}: your function raised RuntimeError ({err}). Mind the layouts: "
                                 "A (Ns, S), B (Nc, C), V_s (S, Ns) like Aᵀ, V_c (C, Nc) like Bᵀ.") from None
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.isfinite(got).all():
            g = got.detach().to(torch.float64)
            A, B, V_s, V_c = system.A, system.B, system.V_s, system.V_c
            zs, zc = torch.zeros_like(V_s), torch.zeros_like(V_c)
            per_token = torch.nn.functional.layer_norm(X, (C,), eps=eps)
            variants = [
                (_reference_flow(X, A, B, V_s, V_c, eps) + X, "the leak −X is missing."),
                (_reference_flow(X, A, B, V_s, V_c, eps) + 2 * X, "the leak has the wrong sign: it is −X."),
                (_reference_flow(X, A, B, zs, zc, eps), "the breaking parts V_s, V_c are missing (this is the "
                 "tied flow): the feedback weights are Aᵀ + V_s and B + V_cᵀ."),
                (_reference_flow(X, A, B, zs, V_c, eps), "the token feedback lacks V_s: it is (Aᵀ + V_s) GELU(A G)."),
                (_reference_flow(X, A, B, V_s, zc, eps), "the channel feedback lacks V_c: it is GELU(G Bᵀ)(B + V_cᵀ)."),
                (system.mixing(per_token) - X, "LayerNorm must run over the whole S × C matrix "
                 "(normalized_shape = X.shape[-2:]), not over each token's channels."),
            ]
            for value, message in variants:
                if not torch.allclose(g, want, rtol=1e-6, atol=1e-8) and torch.allclose(g, value, rtol=1e-6, atol=1e-8):
                    raise AssertionError(f"{what}: {message}")
        assert_close(got, want, what, atol=1e-8, rtol=1e-6)

    check("the broken flow dX/dt", test, fn)


# ----------------------------------------------------------------------------------------------
# the full-size study (benchmarks/full_size.py ch07_large)
# ----------------------------------------------------------------------------------------------
def full_size_large(tiny: bool = False) -> tuple[dict, dict]:
    """The chapter's large system at full size: ``benchmarks/full_size.py ch07_large``.

    * ``runs``: the two runs of section 7.3 (:func:`run`, seed 0, the same ten initial states),
      tied (``s = 0``) and broken (``s = 1``), continued from the official span ``t <= 10`` to
      ``t = 100``; as :func:`summarize` summaries (counts from every step, curves at the times
      ``0, 0.1, ..., 10, 11, ..., 100``).
      ``official_energy_shares``: :func:`increase_shares` of :func:`official_energy` along them.
    * ``step_check``: both runs to ``t = 10`` again with a ten times smaller step: the largest
      difference of the states and the increase shares at both steps.
    * ``ensemble``: :func:`ensemble_fraction` over weight draws of the large system, per breaking
      strength, once up to ``t = 10`` and once up to ``t = 100``.

    ``tiny=True`` runs the same code paths at toy sizes in seconds. Returns ``(data, settings)``.
    """
    settings = dict(size="large", sizes=SYSTEMS["large"]["sizes"], radii=SYSTEMS["large"]["radii"],
                    breaking_at_s1=SYSTEMS["large"]["breaking"], x0=SYSTEMS["large"]["x0"], method="rk4",
                    dtype="float64", seed=0, x0_seed=1, batch=10, strengths_run=[0.0, 1.0])
    if tiny:
        settings.update(t_end=1.0, t_official=0.5, dt=0.05, dt_fine=0.025, batch=2,
                        ensemble=dict(strengths=[0.0, 1.0], n_systems=2, batch=2, seed=100))
        times = [0.0, 0.5, 1.0]
    else:
        settings.update(t_end=100.0, t_official=10.0, dt=1e-2, dt_fine=1e-3,
                        ensemble=dict(strengths=[0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0], n_systems=16, batch=8, seed=100))
        times = [k / 10 for k in range(100)] + [float(k) for k in range(10, 101)]
    T, T0, dt = settings["t_end"], settings["t_official"], settings["dt"]
    runs, step_check = {}, {}
    for name, s in (("tied", 0.0), ("broken", 1.0)):
        r = run(s, "large", seed=0, batch=settings["batch"], t_end=T, dt=dt)
        runs[name] = summarize(r, times=times)
        coarse = run(s, "large", seed=0, batch=settings["batch"], t_end=T0, dt=dt)
        fine = run(s, "large", seed=0, batch=settings["batch"], t_end=T0, dt=settings["dt_fine"])
        step_check[name] = dict(max_abs_state_diff=float((coarse["x"][-1] - fine["x"][-1]).abs().max()),
                                pseudo_increase_share=[increase_shares(coarse["pseudo"])["frac_steps"],
                                                       increase_shares(fine["pseudo"])["frac_steps"]])
        runs[name]["official_energy_shares"] = increase_shares(official_energy(r["system"], r["x"]))
        speeds = r["speed"]
        runs[name]["speed_at"] = {f"{t:g}": [float(speeds[int(round(t / dt))].min()), float(speeds[int(round(t / dt))].max())]
                                  for t in (T0, T)}
    e = settings["ensemble"]
    ensemble = {}
    for t_end in (T0, T):
        ens = ensemble_fraction(e["strengths"], "large", n_systems=e["n_systems"], batch=e["batch"], t_end=t_end,
                                dt=dt, seed=e["seed"])
        ensemble[f"t_end={t_end:g}"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ens.items()}
    return dict(runs=runs, step_check=step_check, ensemble=ensemble), settings
