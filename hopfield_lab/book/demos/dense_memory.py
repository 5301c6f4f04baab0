"""Chapter 2 demo: one-step retrieval in a modern Hopfield network, and the role of β.

Stored patterns are handwritten digits (scikit-learn's bundled 8×8 digits, no download),
scaled to [−1, 1]. A query is a stored digit with its lower rows masked (set to 0, "unknown").
One update ``ξ_new = Xᵀ softmax(β X ξ)`` (:class:`~hopfield_lab.classical.ModernHopfieldNetwork`)
returns

* for small β the average of all stored digits (a global fixed point),
* for intermediate β a *metastable* average of the digits most similar to the query,
* for large β the cued digit itself.

:func:`retrieval_demo` computes one case, :func:`make_widget` is the ipywidgets demo whose
callback :func:`show_retrieval` draws and returns it, :func:`beta_player` is the static twin
(a ``to_jshtml`` player sweeping β); :func:`beta_sweep` and :func:`plot_beta_sweep` summarise
the sweep in one figure.

Capacity: :func:`largest_k` finds, for one size ``N``, the largest number of random patterns
that are still recalled from themselves (dense associative memory with ``F = z^n`` or ``e^z``
through :func:`~hopfield_lab.classical.capacity_curve`, or one update of the modern network,
:func:`modern_overlap`); :func:`scaling_study` runs it over sizes, :func:`plot_scaling` draws it
(the chapter's live run and the committed :func:`full_size_capacity` use the same functions).
:func:`plot_descent` and :func:`plot_recall_vs_load` draw the chapter's other two figures of
the binary models, :func:`plot_landscapes` the two-dimensional energy landscapes.
:func:`check_update` is the check cell of the chapter's auto-checked coding exercise.
"""
from __future__ import annotations

import math
from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import viz
from ...classical import ModernHopfieldNetwork, capacity_curve, corrupt, random_patterns
from ..exercises import assert_close, check

__all__ = ["digit_patterns", "mask_rows", "retrieval_demo", "show_retrieval", "make_widget", "beta_player",
           "beta_sweep", "plot_beta_sweep", "plot_descent", "plot_recall_vs_load", "plot_landscapes",
           "modern_overlap", "largest_k", "scaling_study", "plot_scaling", "full_size_capacity",
           "estimated_t4_minutes", "check_update", "MODELS", "FULL_SIZES"]

SIDE = 8  # the digits are 8×8


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 8.0 - 1.0, d.target  # pixel values 0..16 → [−1, 1]


def digit_patterns(n_patterns: int, seed: int = 0, *, dtype: torch.dtype = torch.float64,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_patterns`` random digits (without replacement): patterns ``(P, 64)`` in [−1, 1] and
    labels ``(P,)``. The same ``seed`` gives the same digits."""
    x, y = _digits()
    if not 1 <= n_patterns <= len(x):
        raise ValueError(f"n_patterns must lie in [1, {len(x)}], got {n_patterns}.")
    idx = np.random.default_rng(seed).choice(len(x), n_patterns, replace=False)
    return (torch.tensor(x[idx], dtype=dtype, device=device),
            torch.tensor(y[idx], device=device))


def mask_rows(x: torch.Tensor, mask: float) -> torch.Tensor:
    """Set the lowest ``round(mask * 8)`` rows of 8×8 images ``(..., 64)`` to 0 (unknown)."""
    if not 0.0 <= mask <= 1.0:
        raise ValueError(f"mask must lie in [0, 1], got {mask}.")
    rows = int(round(mask * SIDE))
    out = x.clone().reshape(*x.shape[:-1], SIDE, SIDE)
    if rows:
        out[..., SIDE - rows :, :] = 0.0
    return out.reshape(x.shape)


def retrieval_demo(beta: float = 1.0, n_patterns: int = 30, mask: float = 0.5, seed: int = 0) -> dict:
    """Store ``n_patterns`` digits, query with digit 0 masked, apply one update.

    Returns a dict with ``patterns (P, 64)``, ``labels (P,)``, ``target_index`` (0),
    ``query (64,)``, ``retrieved (64,)``, ``weights (P,)`` (the softmax ``p``),
    ``effective_patterns`` (``1/Σp²``), ``argmax`` (the most weighted pattern),
    ``energy_before``/``energy_after`` (energy of the query and of the retrieved state),
    ``error`` (max |retrieved − target|), ``class_weight`` (the softmax weight on the digits of
    the cued digit's class, the cued one included).
    """
    x, labels = digit_patterns(n_patterns, seed)
    net = ModernHopfieldNetwork(x, beta=beta)
    query = mask_rows(x[0], mask)
    p = net.weights(query)
    new = p @ x
    return {
        "patterns": x,
        "labels": labels,
        "target_index": 0,
        "query": query,
        "retrieved": new,
        "weights": p,
        "effective_patterns": float(ModernHopfieldNetwork.effective_patterns(p)),
        "argmax": int(p.argmax()),
        "energy_before": float(net.energy(query)),
        "energy_after": float(net.energy(new)),
        "error": float((new - x[0]).abs().max()),
        "class_weight": float(p[labels == labels[0]].sum()),
        "beta": beta,
    }


def _draw(fig, out: dict, axes=None):
    """Draw query / retrieved / target and the softmax weights into four axes."""
    if axes is None:
        gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 2.6])
        axes = [fig.add_subplot(gs[0, j]) for j in range(4)]
    imgs = []
    for ax, img, title in zip(axes[:3], (out["query"], out["retrieved"], out["patterns"][0]),
                              ("query (masked)", "one update", f"stored digit ({int(out['labels'][0])})")):
        imgs.append(ax.imshow(img.reshape(SIDE, SIDE).numpy(), cmap="gray_r", vmin=-1, vmax=1))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[3]
    p = out["weights"].numpy()
    colors = ["C3" if i == 0 else ("C0" if int(out["labels"][i]) == int(out["labels"][0]) else "0.6")
              for i in range(len(p))]
    bars = ax.bar(np.arange(len(p)), p, color=colors)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("stored pattern μ\n(red: cued, blue: same class)", fontsize=9)
    ax.set_ylabel(r"softmax weight $p_\mu$", fontsize=9)
    ttl = ax.set_title("", fontsize=9)
    return axes, imgs, bars, ttl


def _title(out: dict) -> str:
    return f"β = {out['beta']:.3g}: effective patterns 1/Σp² = {out['effective_patterns']:.1f}"


def show_retrieval(log10_beta: float = 0.0, n_patterns: int = 30, mask: float = 0.5, seed: int = 0) -> dict:
    """The widget's callback: compute :func:`retrieval_demo` at ``β = 10**log10_beta``, draw, return it."""
    out = retrieval_demo(10.0**log10_beta, n_patterns, mask, seed)
    fig = plt.figure(figsize=(7.5, 2.7))
    *_, ttl = _draw(fig, out)
    ttl.set_text(_title(out))
    fig.tight_layout()
    plt.show()
    return out


def make_widget():
    """The chapter's interactive demo: sliders for log10 β, the number of stored digits, the
    masked fraction and the seed. Returns the ``ipywidgets.interactive`` (``.result``: last dict)."""
    import ipywidgets as w

    return w.interactive(
        show_retrieval,
        log10_beta=w.FloatSlider(value=0.0, min=-3.0, max=1.5, step=0.1, description="log10 β",
                                 continuous_update=False),
        n_patterns=w.IntSlider(value=30, min=2, max=200, description="patterns", continuous_update=False),
        mask=w.FloatSlider(value=0.5, min=0.0, max=0.75, step=0.125, description="mask",
                           readout_format=".0%", continuous_update=False),
        seed=w.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False),
    )


def beta_player(betas=None, n_patterns: int = 30, mask: float = 0.5, seed: int = 0, *, interval: int = 400):
    """Static twin of the widget: a jshtml player sweeping β (default: 21 values from 10⁻³ to 10^1.5)."""
    betas = list(np.logspace(-3, 1.5, 19)) if betas is None else list(betas)
    outs = [retrieval_demo(float(b), n_patterns, mask, seed) for b in betas]
    fig = plt.figure(figsize=(7.5, 2.7))
    axes, imgs, bars, ttl = _draw(fig, outs[0])
    fig.tight_layout()

    def update(i):
        o = outs[i]
        imgs[1].set_data(o["retrieved"].reshape(SIDE, SIDE).numpy())
        for b, h in zip(bars, o["weights"].numpy()):
            b.set_height(h)
        ttl.set_text(_title(o))

    return viz.animate(update, len(outs), fig, interval=interval,
                       alt=f"Player over {len(outs)} values of the inverse temperature β, from "
                           f"{betas[0]:.3g} to {betas[-1]:.3g}: a half-masked digit, its retrieval after one "
                           "update, the stored digit, and a bar chart of the softmax weights over the "
                           f"{n_patterns} stored digits, coloured by whether they are the cued digit or "
                           "of its class; the title gives the effective number of patterns at each β.")


def beta_sweep(betas, n_patterns: int = 30, mask: float = 0.5, seed: int = 0) -> dict:
    """:func:`retrieval_demo` for each β: lists ``beta``, ``effective_patterns``, ``error``,
    ``target_weight`` (softmax weight on the cued digit) and ``class_weight``."""
    outs = [retrieval_demo(float(b), n_patterns, mask, seed) for b in betas]
    return {"beta": [float(b) for b in betas],
            "effective_patterns": [o["effective_patterns"] for o in outs],
            "error": [o["error"] for o in outs],
            "target_weight": [float(o["weights"][o["target_index"]]) for o in outs],
            "class_weight": [o["class_weight"] for o in outs],
            "n_patterns": n_patterns, "n_class": int((outs[0]["labels"] == outs[0]["labels"][0]).sum())}


def plot_beta_sweep(sweep: dict):
    """Two panels against β: the effective number of patterns with the retrieval error, and the
    softmax weight on the cued digit and on its class. Returns the figure."""
    b = sweep["beta"]
    fig, (ax, bx) = viz.panels(2, row_height=3.3)
    ax.semilogx(b, sweep["effective_patterns"], marker="o", ms=3, label=r"$K_\mathrm{eff} = 1 / \sum_\mu p_\mu^2$")
    ax.set_xlabel("inverse temperature β (log scale)")
    ax.set_ylabel("effective number of patterns")
    ax2 = ax.twinx()
    ax2.semilogx(b, sweep["error"], color="C1", marker="s", ms=3, label="max |retrieved − cued digit|")
    ax2.set_ylabel("retrieval error (pixel units)", color="C1")
    ax.set_title(f"one update of a masked digit,\n{sweep['n_patterns']} stored digits", fontsize=10)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center left", fontsize=8)
    bx.semilogx(b, sweep["class_weight"], color="C0", marker="o", ms=3,
                label=f"on the cued digit's class\n({sweep['n_class']} digits)")
    bx.semilogx(b, sweep["target_weight"], color="C3", marker="s", ms=3, label="on the cued digit")
    bx.set_xlabel("inverse temperature β (log scale)")
    bx.set_ylabel("softmax weight")
    bx.set_ylim(0, 1.02)
    bx.set_title("where the weight goes", fontsize=10)
    bx.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# figures of the binary models
# --------------------------------------------------------------------------------------------
def _label(F: str, n: int) -> str:
    """Legend text (mathtext) of an interaction function: ``$F = z^{3}$``."""
    if F == "exp":
        return r"$F = \exp(z)$"
    base = r"\max(z,0)" if F == "repu" else "z"
    return f"$F = {base}^{{{n}}}$"


def plot_descent(runs: dict):
    """Energy traces of asynchronous runs, each rescaled to fall from 1 (start) to 0 (end) and
    averaged over the runs. ``runs`` maps ``(F, n)`` to a :class:`~hopfield_lab.classical.RunResult`
    of a batch of states. Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
    for (F, n), run in runs.items():
        e = run.energy.double().cpu()
        scaled = (e - e[-1]) / (e[0] - e[-1]).clamp_min(1e-12)
        ax.plot(run.updates, scaled.mean(1), label=_label(F, n))
    batch = next(iter(runs.values())).energy.shape[1]
    ax.set_xlabel("single-neuron updates")
    ax.set_ylabel(r"$(E - E_\mathrm{final}) \,/\, (E_0 - E_\mathrm{final})$")
    ax.set_title(f"asynchronous updates descend every energy\n(mean of {batch} runs)", fontsize=10)
    ax.legend()
    return fig


def plot_recall_vs_load(curves: dict, n_neurons: int, flip: float):
    """Final overlap against the load ``K/N`` (log scale) for each ``(F, n)`` of ``curves``
    (:class:`~hopfield_lab.classical.CapacityResult`). Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    for (F, n), r in curves.items():
        ax.semilogx(r.load, r.overlap, marker="o", ms=3, label=_label(F, n))
    ax.axvline(1.0, color="k", ls=":", lw=1)
    ax.axvline(0.138, color="k", ls="--", lw=1)
    ax.text(0.145, 0.55, "0.138 N", fontsize=8)
    ax.text(1.05, 0.55, "K = N", fontsize=8)
    ax.set_xlabel("load K / N (log scale)")
    ax.set_ylabel("final overlap m (mean over cues)")
    ax.set_title(f"recall from {flip:.0%} corrupted cues, N = {n_neurons}", fontsize=10)
    ax.legend()
    return fig


def plot_landscapes(patterns: torch.Tensor, betas, *, extent: float = 1.6, grid: int = 121,
                    stride: int = 97, steps: int = 500):
    """Energy landscapes of a modern Hopfield network with two-dimensional ``patterns (K, 2)`` for
    each β, with the fixed points that the update reaches from a grid of starts. Returns
    ``(figure, {β: number of distinct fixed points})``."""
    axis = torch.linspace(-extent, extent, grid, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], -1)
    starts = pts[::stride]
    ncols = min(3, len(betas))
    rows = -(-len(betas) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(viz.MAX_WIDTH_IN, 2.8 * rows), layout="constrained",
                             squeeze=False)
    for ax in axes.flat[len(betas):]:
        ax.axis("off")
    n_minima = {}
    for ax, beta in zip(axes.flat, betas):
        net = ModernHopfieldNetwork(patterns, beta=beta)
        e = net.energy(pts).reshape(grid, grid)
        cs = ax.contourf(gx, gy, e, levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="energy E (dimensionless)")
        ends = net.retrieve(starts, steps=steps)
        n_minima[beta] = len(torch.unique(ends.round(decimals=2), dim=0))
        ax.scatter(*patterns.T, marker="x", color="red", s=60, label="stored patterns")
        ax.scatter(*ends.T, color="white", edgecolor="k", s=25, label="fixed points")
        ax.set_title(f"β = {beta}: {n_minima[beta]} fixed point(s)", fontsize=9)
        ax.set_xlabel("ξ₁")
        ax.set_ylabel("ξ₂")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    return fig, n_minima


# --------------------------------------------------------------------------------------------
# capacity versus size
# --------------------------------------------------------------------------------------------
#: The memories of the scaling study: label -> (kind, F, n). ``dense`` runs the binary dense
#: associative memory to a fixed point; ``modern`` is one update of the modern network (β = 1).
MODELS = {
    "z^2": ("dense", "poly", 2),
    "z^3": ("dense", "poly", 3),
    "z^4": ("dense", "poly", 4),
    "exp": ("dense", "exp", 1),
    "modern": ("modern", None, None),
}


def modern_overlap(n_neurons: int, n_patterns: int, *, trials: int = 4, cues_per_trial: int = 25,
                   beta: float = 1.0, flip_fraction: float = 0.0, seed: int = 0, device=None) -> float:
    """One-step retrieval in the modern Hopfield network with random ±1 patterns: store
    ``n_patterns`` patterns of dimension ``N``, query with (up to ``cues_per_trial`` of) them,
    ``flip_fraction`` of the entries flipped, apply one update (ch2-mhn-update) and return the
    mean overlap ``m = x_μ·ξ_new / N`` with the cued pattern over ``trials`` pattern sets.
    Random numbers come from a CPU generator seeded with ``seed``, as in
    :func:`~hopfield_lab.classical.capacity_curve`."""
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for _ in range(trials):
        x = random_patterns(n_patterns, n_neurons, generator=g, dtype=torch.float64, device=device)
        c = min(n_patterns, cues_per_trial)
        queries = corrupt(x[:c], flip_fraction, generator=g)
        new = ModernHopfieldNetwork(x, beta=beta).update(queries)  # (c, N)
        total += float((new * x[:c]).sum()) / n_neurons
        count += c
    return total / count


def _recalled(label: str, n_neurons: int, k: int, trials: int, cues: int, threshold: float,
              seed: int, device) -> bool:
    kind, F, n = MODELS[label]
    if kind == "modern":
        m = modern_overlap(n_neurons, k, trials=trials, cues_per_trial=cues, seed=seed, device=device)
    else:
        m = float(capacity_curve(n_neurons, [k], model="dense", F=F, n=n, trials=trials,
                                 cues_per_trial=cues, seed=seed, device=device).overlap[0])
    return m >= threshold


def _search(test, guess: int | None, rel_tol: float, k_max: int, growth: float) -> int:
    """Largest ``K`` with ``test(K)`` true, for a ``test`` that holds up to some ``K`` and fails
    beyond it: step by ``growth`` from ``guess`` (or from 2) up or down until the outcome changes,
    then bisect until the bracket is within ``rel_tol`` (or adjacent integers)."""
    k = max(2, int(guess)) if guess else 2
    if test(k):
        lo, hi = k, None
        while hi is None:
            nxt = max(lo + 1, int(lo * growth))
            if nxt > k_max:
                raise ValueError(f"still recalled at K = {lo}; raise k_max ({k_max}) if you mean it, "
                                 "or choose a smaller N.")
            lo, hi = (nxt, None) if test(nxt) else (lo, nxt)
    else:
        lo, hi = None, k
        while lo is None:
            nxt = int(hi / growth)
            if nxt <= 1:
                lo = 1  # one stored pattern is always recalled from itself
            else:
                lo, hi = (nxt, hi) if test(nxt) else (None, nxt)
    while hi - lo > 1 and hi > lo * (1 + rel_tol):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if test(mid) else (lo, mid)
    return lo


def largest_k(label: str, n_neurons: int, *, trials: int = 4, cues: int = 25, threshold: float = 0.99,
              rel_tol: float = 0.05, guess: int | None = None, k_max: int = 10**7, seed: int = 0,
              device=None) -> int:
    """The largest number of random patterns ``K`` that the memory ``MODELS[label]`` of ``N``
    neurons recalls from the patterns themselves with mean final overlap ``≥ threshold``.

    Without a ``guess``, doubles ``K`` from 2 until recall fails; with one, steps by 25 % up or
    down from it (a good guess saves the costly tests far past the capacity, where the dynamics
    wanders for many sweeps). Then bisects between the last success and the first failure until
    they are within ``rel_tol`` (or adjacent integers). Each test uses fresh patterns from
    ``seed``. Returns 1 if even ``K = 2`` fails (one stored pattern is always recalled from
    itself); raises if ``K`` passes ``k_max`` without a failure.
    """
    if label not in MODELS:
        raise ValueError(f"unknown memory {label!r}; choose from {sorted(MODELS)}.")
    test = lambda k: _recalled(label, n_neurons, k, trials, cues, threshold, seed, device)
    try:
        return _search(test, guess, rel_tol, k_max, 1.25 if guess else 2.0)
    except ValueError as err:
        raise ValueError(f"{label} with N = {n_neurons}: {err}") from None


def _guess(label: str, neurons: list, kmax: list, n_next: int) -> int | None:
    """Extrapolate the capacity at ``n_next`` from the sizes measured so far: a power law for
    ``z^n`` (exponent from the last two points, or ``n − 1``), an exponential otherwise (rate
    from the last two points, or 0.5 per neuron)."""
    if not kmax:
        return None
    n0, k0 = neurons[-1], kmax[-1]
    if _is_exponential(label):
        rate = math.log(k0 / kmax[-2]) / (n0 - neurons[-2]) if len(kmax) > 1 and k0 > kmax[-2] else 0.5
        return int(k0 * math.exp(rate * (n_next - n0)))
    power = (math.log(k0 / kmax[-2]) / math.log(n0 / neurons[-2]) if len(kmax) > 1 and k0 > kmax[-2]
             else MODELS[label][2] - 1)
    return int(k0 * (n_next / n0) ** power)


def scaling_study(sizes: dict, *, trials: int = 4, cues: int = 25, threshold: float = 0.99,
                  rel_tol: float = 0.05, seed: int = 0, device=None) -> dict:
    """:func:`largest_k` for each memory label and each ``N`` of ``sizes`` (label -> increasing
    list of N), each search started from the extrapolation of the sizes before it.

    Returns a JSON-able dict ``{"trials", "cues", "threshold", "rel_tol", "curves": [...]}``;
    each curve has ``label``, ``neurons`` and ``kmax`` (one entry per N), and ``slope``: the
    least-squares slope of ``log K`` against ``log N`` for ``z^n`` (the power), against ``N`` for
    ``exp`` and ``modern`` (the exponential rate).
    """
    curves = []
    for label, neurons in sizes.items():
        neurons = [int(n) for n in neurons]
        if neurons != sorted(set(neurons)):
            raise ValueError(f"the sizes of {label!r} must increase, got {neurons}.")
        kmax: list[int] = []
        for i, n in enumerate(neurons):
            kmax.append(largest_k(label, n, trials=trials, cues=cues, threshold=threshold, rel_tol=rel_tol,
                                  guess=_guess(label, neurons[:i], kmax, n), seed=seed, device=device))
        x = np.asarray(neurons, dtype=float)
        x = x if _is_exponential(label) else np.log(x)
        slope = float(np.polyfit(x, np.log(kmax), 1)[0]) if len(neurons) > 1 else float("nan")
        curves.append({"label": label, "neurons": neurons, "kmax": kmax, "slope": slope})
    return {"trials": trials, "cues": cues, "threshold": threshold, "rel_tol": rel_tol, "curves": curves}


def _is_exponential(label: str) -> bool:
    kind, F, _ = MODELS[label]
    return kind == "modern" or F == "exp"


def plot_scaling(study: dict, axes=None, *, title: str = ""):
    """Two panels of a :func:`scaling_study`: the polynomial memories on log–log axes (a straight
    line of slope ``n − 1`` is ``K ∝ N^(n−1)``) and the exponential ones on semi-log axes (a
    straight line is ``K ∝ e^(rate·N)``), with the fitted slopes in the legends. Returns the axes."""
    if axes is None:
        _, axes = viz.panels(2, ncols=1, row_height=2.9)
    poly = [c for c in study["curves"] if not _is_exponential(c["label"])]
    expo = [c for c in study["curves"] if _is_exponential(c["label"])]
    for c in poly:
        axes[0].loglog(c["neurons"], c["kmax"], marker="o", label=f"$F = {c['label']}$: slope {c['slope']:.2f}")
    if poly:
        ns = sorted({n for c in poly for n in c["neurons"]})
        axes[0].loglog(ns, ns, "k:", lw=1, label="K = N")
    axes[0].set_xlabel("number of neurons N (log scale)")
    axes[0].set_ylabel(f"largest K recalled (m ≥ {study['threshold']})")
    axes[0].set_title(f"$F = z^n$: K grows like a power of N{title}", fontsize=10)
    names = {"exp": r"dense, $F = \exp(z)$", "modern": "modern, one update (β = 1)"}
    for c in expo:
        axes[1].semilogy(c["neurons"], c["kmax"], marker="o",
                         label=f"{names[c['label']]}: rate {c['slope']:.2f} per neuron")
    axes[1].set_xlabel("number of neurons N")
    axes[1].set_ylabel(f"largest K recalled (m ≥ {study['threshold']})")
    axes[1].set_title(r"exponential memories: K grows like $e^{\mathrm{rate}\cdot N}$" + title, fontsize=10)
    for ax in axes:
        ax.legend(fontsize=8)
    return axes


def _searched(kmax: int, guess: int | None, rel_tol: float) -> list[tuple[int, bool]]:
    """The tests ``(K, recalled)`` that :func:`largest_k` makes when recall holds exactly up to ``kmax``."""
    tests = []

    def test(k):
        tests.append((k, k <= kmax))
        return k <= kmax

    _search(test, guess, rel_tol, 10**12, 1.25 if guess else 2.0)
    return tests


def estimated_t4_minutes(study: dict) -> float:
    """An estimate (not a measurement) of the minutes that :func:`scaling_study` at the sizes of
    ``study`` (e.g. the committed full-size run) takes on a Colab T4.

    The measured ``kmax`` of ``study`` fix the sequence of tests of :func:`largest_k`. A test of a
    dense memory runs ``trials`` networks, each for a few sweeps (3 when recall holds, 10 when it
    fails) of ``N`` sequential single-neuron steps; a step costs the launch latency
    ``GPU_STEP_SECONDS`` of the chapter 1 estimate plus its memory traffic (about four passes
    over ``cues × K`` numbers, eight for ``F = exp``, which sorts them) at the T4's bandwidth. A
    test of the modern network is one product per network, priced like one step.
    """
    from .hopfield import GPU_STEP_SECONDS, T4_BYTES_PER_SECOND

    seconds = 0.0
    for c in study["curves"]:
        kind, F, _ = MODELS[c["label"]]
        for i, (n, kmax) in enumerate(zip(c["neurons"], c["kmax"])):
            guess = _guess(c["label"], c["neurons"][:i], c["kmax"][:i], n)
            for k, ok in _searched(kmax, guess, study["rel_tol"]):
                rows = min(k, study["cues"]) * k
                if kind == "modern":
                    seconds += study["trials"] * (GPU_STEP_SECONDS + 3 * 8 * rows * n / T4_BYTES_PER_SECOND)
                    continue
                passes = 8 if F == "exp" else 4
                step = GPU_STEP_SECONDS + passes * 8 * rows / T4_BYTES_PER_SECOND
                seconds += study["trials"] * (3 if ok else 10) * n * step
    return seconds / 60


#: Sizes of the committed study: up to where one test of the largest K takes about a minute on a
#: CPU core (F = exp sorts K exponents per neuron update; the modern network needs one product).
FULL_SIZES = {"z^2": [32, 64, 128, 256, 512, 1024, 2048], "z^3": [32, 48, 64, 96, 128, 192, 256],
              "z^4": [24, 32, 48, 64, 96, 128], "exp": [8, 10, 12, 14, 16, 18, 20],
              "modern": [8, 12, 16, 20, 24, 28]}


def full_size_capacity(tiny: bool) -> tuple[dict, dict]:
    """The committed full-size capacity study (``benchmarks/full_size.py ch02_capacity``): the
    chapter's :func:`scaling_study` at sizes where the power laws and the exponential growth
    span two to four decades of ``K``, with 16 pattern sets per test."""
    sizes = ({"z^2": [16, 24], "z^3": [16, 24], "exp": [6, 8], "modern": [6, 8]} if tiny else FULL_SIZES)
    settings = dict(sizes=sizes, trials=2 if tiny else 16, cues=25, threshold=0.99, rel_tol=0.05, seed=0)
    data = scaling_study(sizes, trials=settings["trials"], cues=settings["cues"],
                         threshold=settings["threshold"], rel_tol=settings["rel_tol"], seed=settings["seed"])
    return data, settings


# --------------------------------------------------------------------------------------------
# auto-checked exercise
# --------------------------------------------------------------------------------------------
def check_update(fn) -> None:
    """Check a reader's ``fn(X (K, d), xi (B, d), beta) -> (B, d)``: one update (ch2-mhn-update)
    of the modern Hopfield network, ``ξ_new = softmax(β ξ Xᵀ) X`` row by row. Prints one line:
    correct, or what is wrong."""
    def test(f):
        g = torch.Generator().manual_seed(5)
        X = torch.randn(7, 4, generator=g, dtype=torch.float64)   # K = 7 patterns, d = 4
        xi = torch.randn(3, 4, generator=g, dtype=torch.float64)  # B = 3 states
        beta = 2.0
        got = f(X.clone(), xi.clone(), beta)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 7):
            raise AssertionError("the result has shape (B, K) = (3, 7): these are the softmax weights p. "
                                 "Return their average of the stored patterns, p @ X, shape (B, d).")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 4):
            w = got.detach().double().cpu()
            if torch.allclose(w, torch.softmax(beta * xi @ X.T, dim=0) @ X):
                raise AssertionError("the softmax runs over the states; it must run over the stored patterns "
                                     "(the last axis of xi @ X.T: dim=-1).")
            if torch.allclose(w, torch.softmax(xi @ X.T, dim=-1) @ X):
                raise AssertionError("β is missing: the weights are softmax(β · xi @ X.T).")
        want = ModernHopfieldNetwork(X, beta=beta).update(xi)
        assert_close(got, want, "the update of 3 states with 7 stored patterns (d = 4, β = 2)")
    return check("modern Hopfield update", test, fn)
