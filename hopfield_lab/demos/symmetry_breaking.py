"""Demos of chapter 7 (symmetry breaking in the dynamics of the continuous parallelized Mixer).

* :func:`run` -- integrate the small or large demo system at a given symmetry-breaking strength and
  return trajectories, energy, pseudo-energy, speed and the number of energy-increasing steps.
* :func:`draw_run` / :func:`plot_run` -- trajectories, (pseudo-)energy and speed in three panels.
* :func:`make_widget` -- the chapter's ipywidgets demo (strength of the breaking part, system, seed).
* :func:`strength_player` -- its static twin: the same panels, one frame per strength.
* :func:`landscape_figure` -- the 2-D energy landscape of the S=2, C=1 system with the flow field.
* :func:`ensemble_fraction` -- over many random weight draws: how often the pseudo-energy increases.

The ODE itself lives in :mod:`hopfield_lab.odes` (a view of the HAM core: its integrator and its
counter of energy increases). The *strength* ``s`` scales the breaking radii of the paper's
asymmetric set-up: ``|V_s| = 1.5 s``, ``|V_c| = 4.0 s``; ``s = 0`` is the symmetric system with
the same ``A`` and ``B``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .. import odes

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


def draw_run(axes, r: dict, n_show: int = 4) -> None:
    """Draw a :func:`run` result into three axes: trajectories, pseudo-energy, speed."""
    for ax in axes:
        ax.clear()
    t = r["t"].numpy()
    x = r["x"].numpy()
    S, C = x.shape[-2:]
    entries = [(i % S, (i // S) % C) for i in range(min(n_show, S * C))]
    for k, (i, j) in enumerate(entries):
        axes[0].plot(t, x[:, 0, i, j], color=f"C{k}", label=f"$X_{{{i + 1}{j + 1}}}$")
    axes[0].legend(fontsize=8, loc="best")
    axes[0].set(title="state of initial condition 1", xlabel="time t (units of τ_v)", ylabel="X (dimensionless)")
    for b in range(x.shape[1]):
        axes[1].plot(t, r["pseudo"][:, b].numpy(), lw=1)
    n_up = int((r["pseudo_increases"] > 0).sum())
    axes[1].set(title=f"pseudo-energy: {n_up}/{x.shape[1]} runs go up somewhere",
                xlabel="time t (units of τ_v)", ylabel="E (dimensionless)")
    for b in range(x.shape[1]):
        axes[2].semilogy(t, r["speed"][:, b].clamp_min(1e-16).numpy(), lw=1)
    axes[2].set(title="speed |dX/dt|", xlabel="time t (units of τ_v)", ylabel="|dX/dt| (1/τ_v)")
    su, sc = r["system"].breaking_norms
    axes[0].figure.suptitle(f"{r['size']} system, breaking strength s = {r['strength']:.2f} "
                            f"(|V_s| = {su:.2f}, |V_c| = {sc:.2f}); "
                            f"{int(r['pseudo_increases'].sum())} increasing steps of {(len(t) - 1) * x.shape[1]}")


def plot_run(r: dict, axes=None):
    """Draw :func:`run`'s result in a new 1x3 figure (or into ``axes``); returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
    draw_run(axes, r)
    return axes[0].figure


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
                    seed: int = 0, dt: float = 0.01, interval: int = 700, dpi: int = 72):
    """Static twin of :func:`make_widget`: one frame per strength, as a JavaScript player.

    Returns ``(player, runs)``: an ``IPython.display.HTML`` player and the list of :func:`run` dicts.
    """
    import matplotlib.pyplot as plt

    from .. import viz

    runs = [run(s, size, seed, dt=dt) for s in strengths]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
    lims = [(min(float(r[k].min()) for r in runs), max(float(r[k].max()) for r in runs)) for k in ("x", "pseudo")]

    def update(i):
        draw_run(axes, runs[i])
        for ax, (lo, hi) in zip(axes[:2], lims):
            pad = 0.05 * (hi - lo + 1e-9)
            ax.set_ylim(lo - pad, hi + pad)
        return []

    update(0)
    return viz.animate(update, len(runs), fig, interval=interval, default_mode="once", dpi=dpi), runs


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


def ensemble_fraction(strengths: Sequence[float], size: str = "large", n_systems: int = 16, batch: int = 8,
                      t_end: float = 10.0, dt: float = 0.01, seed: int = 100, pseudo: bool = True) -> dict:
    """Over ``n_systems`` random weight draws (x ``batch`` initial states each) per strength: the
    fraction of trajectories whose (pseudo-)energy increases at some step, and the mean fraction of
    increasing steps.

    Returns a dict of NumPy arrays ``strengths``, ``frac_runs`` (S,), ``frac_steps`` (S,) and
    ``n_runs`` (int). The same weights ``A, B`` and initial states are used at every strength.
    """
    frac_runs, frac_steps = [], []
    mean, std = SYSTEMS[size]["x0"]
    for s in strengths:
        system = make_system(size, s, seed, n_systems=n_systems)
        x0 = odes.initial_states(system, batch=batch, mean=mean, std=std, seed=seed + 1)
        _, xs = odes.integrate(system, x0, t_end=t_end, dt=dt)
        E = system.pseudo_energy(xs) if pseudo else system.energy(xs)
        inc = odes.count_increases(E)  # (n_systems, batch)
        frac_runs.append(float((inc > 0).double().mean()))
        frac_steps.append(float(inc.double().mean() / (xs.shape[0] - 1)))
    return dict(strengths=np.asarray(strengths, dtype=float), frac_runs=np.asarray(frac_runs),
                frac_steps=np.asarray(frac_steps), n_runs=n_systems * batch)
