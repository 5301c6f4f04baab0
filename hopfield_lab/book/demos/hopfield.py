"""Chapter 1 demo: recall in a binary Hopfield network storing letter glyphs.

* :func:`glyph_patterns` gives letters as ±1 images (16×16 bitmaps shipped with the library,
  :mod:`hopfield_lab.demos.letters`); :func:`pick_uncorrelated` chooses weakly overlapping ones.
* :func:`recall_demo` is the computation behind the widget: store the first ``n_patterns`` letters,
  corrupt the first one, run asynchronous updates, report overlaps and the energy trace.
* :func:`make_widget` is the ipywidgets demo (sliders: noise level, number of stored letters,
  seed); its callback :func:`show_recall` draws and returns what :func:`recall_demo` computed.
* :func:`recall_player` is the static twin: a ``to_jshtml`` player of the same recall;
  :func:`recall_grid` draws the precomputed sweep of the widget's two sliders.
* :func:`plot_letters` and :func:`plot_recall_run` draw the chapter's first two figures.
* :func:`capacity_study` runs :func:`~hopfield_lab.classical.capacity_curve` for several ``N`` and
  keeps, per load, the mean final overlap and its standard error over independent networks;
  :func:`plot_capacity` draws it (the chapter's live quick run and the committed full-size run
  :func:`full_size_capacity` use the same two functions); :func:`steepness` measures how sharply
  the overlap drops across the transition; :func:`estimated_t4_minutes` prices a run before it starts.
* :func:`check_hebbian` is the check cell of the chapter's auto-checked coding exercise.
"""
from __future__ import annotations

import math
import string

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import viz
from ...classical import HopfieldNetwork, capacity_curve, corrupt, hebbian_weights, overlap
from ..exercises import assert_close, check
from .letters import SIZE, read_letters

__all__ = ["DEFAULT_LETTERS", "CAPACITY_LOADS", "ALPHA_C", "glyph_patterns", "pick_uncorrelated",
           "recall_demo", "show_recall", "make_widget", "recall_player", "recall_grid",
           "capacity_study", "steepness", "plot_capacity", "estimated_t4_minutes",
           "full_size_capacity", "check_hebbian"]

#: Eight capital letters with small mutual overlaps; ``pick_uncorrelated`` over A–Z starting from
#: "H" chooses them (a test checks it).
DEFAULT_LETTERS = "HTWCAMVK"

#: Loads α = K/N of the capacity experiment; α·N is an integer for every N the chapter uses.
CAPACITY_LOADS = tuple(round(0.02 * i, 2) for i in range(1, 16))  # 0.02, 0.04, ..., 0.30

#: The critical load of Amit, Gutfreund & Sompolinsky (1985) for N → ∞.
ALPHA_C = 0.138


def glyph_patterns(chars: str = DEFAULT_LETTERS, size: int = SIZE, *, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Letters as ±1 images: ``(len(chars), size*size)``, ink = +1, paper = −1.

    The bitmaps are data (:mod:`hopfield_lab.demos.letters`, capitals A–Z at 16×16), not text
    rendered at run time, so they are the same with every matplotlib and font.
    """
    if not chars:
        raise ValueError("chars must contain at least one character.")
    if size != SIZE:
        raise ValueError(f"the letters ship as {SIZE}×{SIZE} bitmaps only, got size={size}.")
    shipped = read_letters()
    missing = sorted(set(chars) - set(shipped))
    if missing:
        raise ValueError(f"no bitmap for {''.join(missing)!r}: the shipped letters are the capitals A–Z.")
    ink = np.stack([shipped[c].ravel() for c in chars])
    return torch.tensor(np.where(ink, 1.0, -1.0), dtype=dtype, device=device)


def pick_uncorrelated(patterns: torch.Tensor, k: int, first: int = 0) -> list[int]:
    """Greedily choose ``k`` rows of ``patterns (P, N)`` with small mutual overlaps.

    Starts from row ``first`` and repeatedly adds the row whose largest ``|overlap|`` with the
    rows chosen so far is smallest. Returns the chosen row indices.
    """
    if not 1 <= k <= len(patterns):
        raise ValueError(f"k must lie in [1, {len(patterns)}], got {k}.")
    o = (patterns @ patterns.T).abs() / patterns.shape[-1]
    chosen = [first]
    while len(chosen) < k:
        rest = [i for i in range(len(patterns)) if i not in chosen]
        chosen.append(min(rest, key=lambda i: float(o[i, chosen].max())))
    return chosen


def recall_demo(noise: float = 0.2, n_patterns: int = 4, seed: int = 0, *,
                letters: str = DEFAULT_LETTERS, size: int = 16, record_every: int | None = None) -> dict:
    """Store the first ``n_patterns`` letters, cue the first with ``noise`` of its pixels flipped,
    and run asynchronous updates to a fixed point.

    Returns a dict with ``patterns (n_patterns, N)``, ``cue (N,)``, ``recalled (N,)``,
    ``overlap_cue`` and ``overlap_final`` (with the cued letter), ``overlaps_final`` (with each
    stored letter), ``energy`` (trace, one entry per recorded point), ``updates``, ``converged``,
    ``success`` (recalled exactly) and ``result`` (the :class:`~hopfield_lab.classical.RunResult`).
    """
    if not 1 <= n_patterns <= len(letters):
        raise ValueError(f"n_patterns must lie in [1, {len(letters)}] (one per letter in {letters!r}), got {n_patterns}.")
    pats = glyph_patterns(letters[:n_patterns], size)
    g = torch.Generator().manual_seed(seed)
    cue = corrupt(pats[:1], noise, generator=g)
    net = HopfieldNetwork(pats)
    res = net.run(cue, generator=g, record_every=record_every or pats.shape[1] // 8)
    final = res.state[0]
    return {
        "patterns": pats,
        "cue": cue[0],
        "recalled": final,
        "overlap_cue": float(overlap(cue[0], pats[0])),
        "overlap_final": float(overlap(final, pats[0])),
        "overlaps_final": (pats @ final / pats.shape[1]).tolist(),
        "energy": res.energy[:, 0].tolist(),
        "updates": res.updates,
        "converged": res.converged,
        "success": bool(torch.equal(final, pats[0])),
        "result": res,
        "size": size,
    }


def show_recall(noise: float = 0.2, n_patterns: int = 4, seed: int = 0) -> dict:
    """The widget's callback: compute :func:`recall_demo`, draw it, return its dict."""
    out = recall_demo(noise, n_patterns, seed)
    size = out["size"]
    fig = plt.figure(figsize=(7.5, 2.7))
    gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 2.2])
    for j, (img, title) in enumerate([
        (out["patterns"][0], "stored letter"),
        (out["cue"], f"cue: {noise:.0%} flipped\nm = {out['overlap_cue']:.2f}"),
        (out["recalled"], f"recalled\nm = {out['overlap_final']:.2f}"),
    ]):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(img.reshape(size, size).numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(gs[0, 3])
    ax.plot(out["updates"], out["energy"], marker=".")
    ax.set_xlabel("single-neuron updates")
    ax.set_ylabel("energy E (dimensionless)")
    ax.set_title(f"{n_patterns} letters stored:\n" + ("recalled" if out["success"] else "not recalled"), fontsize=9)
    fig.tight_layout()
    plt.show()
    return out


def make_widget():
    """The chapter's interactive demo: sliders for the noise level, the number of stored letters
    and the seed; redraws :func:`show_recall`. Returns the ``ipywidgets.interactive`` object
    (its ``.result`` holds the last dict computed)."""
    import ipywidgets as w

    return w.interactive(
        show_recall,
        noise=w.FloatSlider(value=0.2, min=0.0, max=0.5, step=0.05, description="noise",
                            readout_format=".0%", continuous_update=False),
        n_patterns=w.IntSlider(value=4, min=1, max=len(DEFAULT_LETTERS), description="letters",
                               continuous_update=False),
        seed=w.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False),
    )


def recall_player(noise: float = 0.25, n_patterns: int = 4, seed: int = 0, *, record_every: int = 16,
                  interval: int = 150):
    """Static twin of the widget: a jshtml player of the recall, one frame every ``record_every``
    single-neuron updates, with the energy trace drawn up to the current frame."""
    out = recall_demo(noise, n_patterns, seed, record_every=record_every)
    res, size = out["result"], out["size"]
    frames = res.frames[:, 0].reshape(-1, size, size).numpy()
    energy, updates = np.array(out["energy"]), np.array(out["updates"])
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1, 1.8]})
    im = a0.imshow(frames[0], cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    a0.set_xticks([])
    a0.set_yticks([])
    title = a0.set_title("")
    a1.plot(updates, energy, color="0.8")
    (line,) = a1.plot(updates[:1], energy[:1], marker=".", color="C0")
    a1.set_xlabel("single-neuron updates")
    a1.set_ylabel("energy E (dimensionless)")
    a1.set_title(f"asynchronous recall, {n_patterns} letters stored,\n{noise:.0%} noise", fontsize=9)
    fig.tight_layout()
    pats = out["patterns"]

    def update(i):
        im.set_data(frames[i])
        m = float((torch.from_numpy(frames[i]).flatten().float() @ pats[0]) / pats.shape[1])
        title.set_text(f"{updates[i]} updates, m = {m:.2f}")
        line.set_data(updates[: i + 1], energy[: i + 1])

    return viz.animate(update, len(frames), fig, interval=interval,
                       alt=f"Player of one asynchronous recall with {n_patterns} letters stored: the "
                           f"state, a 16 by 16 letter image that starts as the letter with {noise:.0%} of its "
                           f"pixels flipped, next to its energy trace, one frame every {record_every} "
                           "single-neuron updates. The energy never rises; the title gives the overlap m of "
                           "the state with the stored letter.")


def plot_letters(patterns: torch.Tensor, letters: str, size: int = 16):
    """The stored letters ``patterns (K, size²)`` as images beside the matrix of their overlaps
    ``m^{μν} = ξ^μ·ξ^ν / N``. Returns the figure."""
    k, n = patterns.shape
    ov = (patterns @ patterns.T / n).cpu()
    fig = plt.figure(figsize=(7.5, 3.1), layout="constrained")
    sub = fig.subfigures(1, 2, width_ratios=[1.8, 1])
    ncols = math.ceil(k / 2)
    viz.pattern_grid(patterns, shape=(size, size), titles=list(letters), ncols=ncols,
                     ax=sub[0].subplots(2, ncols), size=1.0)
    sub[0].suptitle(f"{k} letters as ±1 patterns, N = {n}", fontsize=10)
    ax = sub[1].subplots()
    im = ax.imshow(ov.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k), list(letters))
    ax.set_yticks(range(k), list(letters))
    ax.set_title("overlaps $m^{\\mu\\nu}$", fontsize=10)
    sub[1].colorbar(im, ax=ax, shrink=0.8, label="overlap (dimensionless)")
    return fig


def plot_recall_run(run, cue: torch.Tensor, stored: torch.Tensor, stored_energy: float, title: str,
                    size: int = 16):
    """One recall: the energy trace of ``run`` (a :class:`~hopfield_lab.classical.RunResult` of one
    state) against the energy of the stored pattern, and the cue, the fixed point and the stored
    pattern ``(size²,)`` as images. Returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1.4, 1]})
    axes[0].plot(run.updates, run.energy[:, 0].cpu(), marker=".")
    axes[0].set_xlabel("single-neuron updates")
    axes[0].set_ylabel("energy E (dimensionless)")
    axes[0].set_title(title, fontsize=10)
    axes[0].axhline(stored_energy, color="C3", ls="--", label="E of the stored pattern")
    axes[0].legend(fontsize=8)
    axes[1].axis("off")
    for j, (img, t) in enumerate([(cue, "cue"), (run.state[0], "fixed point"), (stored, "stored")]):
        a = axes[1].inset_axes([j / 3 + 0.01, 0.1, 0.31, 0.8])
        a.imshow(img.reshape(size, size).cpu(), cmap="gray_r", vmin=-1, vmax=1)
        a.set_title(t, fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def recall_grid(noise_levels=(0.1, 0.2, 0.3, 0.4), numbers=(2, 4, 6, 8), seed: int = 0):
    """The widget's two sliders swept statically: what the network recalls from a noisy "H"
    with ``k`` letters stored (rows) and a fraction ``noise`` of pixels flipped (columns).

    Returns ``(figure, overlaps)`` with ``overlaps (len(numbers), len(noise_levels))``, the final
    overlap with "H" of each run."""
    fig, axes = plt.subplots(len(numbers), len(noise_levels), figsize=(6.5, 7.4), squeeze=False)
    wins = np.zeros((len(numbers), len(noise_levels)))
    for r, k in enumerate(numbers):
        for c, noise in enumerate(noise_levels):
            out = recall_demo(noise, k, seed=seed)
            wins[r, c] = out["overlap_final"]
            ax = axes[r, c]
            ax.imshow(out["recalled"].reshape(16, 16), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"m = {out['overlap_final']:.2f}", fontsize=8,
                          color="C2" if out["success"] else "C3")
            if r == 0:
                ax.set_title(f"noise {noise:.0%}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{k} letters", fontsize=9)
    fig.suptitle("what the network recalls from a noisy 'H'\n(m: final overlap; green: exact)", fontsize=11)
    fig.tight_layout()
    return fig, wins


# --------------------------------------------------------------------------------------------
# capacity
# --------------------------------------------------------------------------------------------
def capacity_study(neurons, trials: int, *, loads=CAPACITY_LOADS, seed: int = 0, device=None,
                   progress: bool = False) -> dict:
    """Recall from the stored patterns themselves versus the load, for every ``N`` in ``neurons``.

    Calls :func:`~hopfield_lab.classical.capacity_curve` (``trials`` independent networks per
    load, every stored pattern cued, asynchronous dynamics to a fixed point). Returns a JSON-able
    dict ``{"trials", "loads", "curves": [one dict per N]}``; each curve has ``n_neurons``,
    ``n_patterns``, ``load``, ``overlap`` (mean final overlap), ``overlap_se`` (its standard error:
    the spread of the per-network means over √trials), ``trial_sd`` (that spread) and
    ``perfect`` (fraction of patterns recalled without error), one entry per load.
    """
    if trials < 2:
        raise ValueError(f"trials must be at least 2 to measure a spread, got {trials}.")
    curves = []
    for n_neurons in neurons:
        counts = [max(1, int(round(a * n_neurons))) for a in loads]
        if len(set(counts)) != len(counts):
            raise ValueError(f"N = {n_neurons} is too small for the loads {list(loads)}: "
                             f"two loads give the same number of patterns ({counts}).")
        r = capacity_curve(n_neurons, counts, trials=trials, seed=seed, device=device, progress=progress)
        sd = r.trial_overlap.std(dim=1)  # (L,): spread over independent networks
        curves.append({
            "n_neurons": int(n_neurons),
            "n_patterns": r.n_patterns.tolist(),
            "load": r.load.tolist(),
            "overlap": r.overlap.tolist(),
            "overlap_se": (sd / math.sqrt(trials)).tolist(),
            "trial_sd": sd.tolist(),
            "perfect": r.perfect.tolist(),
        })
    return {"trials": int(trials), "loads": [float(a) for a in loads], "curves": curves}


def steepness(curve: dict, lo: float = 0.14, hi: float = 0.20) -> tuple[float, float]:
    """How sharply the overlap drops across the transition: ``−Δm/Δα`` between the loads ``lo``
    and ``hi`` of one curve of :func:`capacity_study`, with its standard error (the two loads
    use independent networks, so their errors add in quadrature). Returns ``(steepness, se)``."""
    load = [round(a, 6) for a in curve["load"]]
    try:
        i, j = load.index(round(lo, 6)), load.index(round(hi, 6))
    except ValueError:
        raise ValueError(f"the curve has no points at loads {lo} and {hi}; it has {load}.") from None
    m, se = curve["overlap"], curve["overlap_se"]
    return (m[i] - m[j]) / (hi - lo), math.hypot(se[i], se[j]) / (hi - lo)


def plot_capacity(study: dict, axes=None, *, title: str = ""):
    """Draw a :func:`capacity_study` in two panels: the mean final overlap with a band of ±1
    standard error, and the fraction of patterns recalled without error, versus the load α.
    Returns the two axes."""
    if axes is None:
        _, axes = viz.panels(2, row_height=3.2)
    for c in study["curves"]:
        load, m, se = (np.asarray(c[k]) for k in ("load", "overlap", "overlap_se"))
        (line,) = axes[0].plot(load, m, marker="o", ms=3, label=f"N = {c['n_neurons']}")
        axes[0].fill_between(load, m - se, m + se, color=line.get_color(), alpha=0.25, lw=0)
        axes[1].plot(load, c["perfect"], marker="o", ms=3, color=line.get_color(), label=f"N = {c['n_neurons']}")
    for ax in axes:
        ax.axvline(ALPHA_C, color="k", ls="--", lw=1)
        ax.set_xlabel("load α = K / N")
        ax.legend(fontsize=8)
    axes[0].text(ALPHA_C + 0.004, 0.02, r"$\alpha_c \approx 0.138$", fontsize=8, transform=axes[0].get_xaxis_transform())
    axes[0].set_ylabel("final overlap m (mean ± s.e.)")
    axes[0].set_title(f"recall from the stored pattern\nitself{title}", fontsize=10)
    axes[1].set_ylabel("fraction recalled without error")
    axes[1].set_title(f"perfect recall{title}", fontsize=10)
    return axes


#: Assumed cost of one single-neuron step of the batched asynchronous dynamics on a GPU: a
#: handful of kernel launches (gather, compare, scatter, row update) at ~10 µs each.
GPU_STEP_SECONDS = 1e-4
#: Peak memory bandwidth of a Colab T4 (NVIDIA's data sheet: 320 GB/s).
T4_BYTES_PER_SECOND = 320e9


def estimated_t4_minutes(neurons, trials: int, loads=CAPACITY_LOADS, sweeps: int = 10) -> float:
    """An estimate (not a measurement) of the minutes :func:`capacity_study` takes on a Colab T4.

    Each sweep of the asynchronous dynamics is ``N`` sequential single-neuron steps; a step costs
    :data:`GPU_STEP_SECONDS` of launch latency plus its memory traffic (reading and writing about
    four ``(trials·K, N)`` float32 arrays) at :data:`T4_BYTES_PER_SECOND`; ``sweeps`` sweeps per
    load (runs from a stored pattern settle in a few; past α_c in up to about ten).
    """
    seconds = 0.0
    for n in neurons:
        for a in loads:
            rows = trials * max(1, int(round(a * n)))
            seconds += sweeps * n * (GPU_STEP_SECONDS + 4 * 4 * rows * n / T4_BYTES_PER_SECOND)
    return seconds / 60


def full_size_capacity(tiny: bool) -> tuple[dict, dict]:
    """The committed full-size capacity study (``benchmarks/full_size.py ch01_capacity``): the
    chapter's :func:`capacity_study` at N = 100 … 800 with enough networks per load that the
    standard error stays near 0.01 where the curves differ (a pilot with 10–20 networks measured
    a per-network spread of 0.03–0.09 between α = 0.14 and 0.20; the committed run with 30 networks
    has standard errors of 0.003–0.016 there)."""
    settings = dict(neurons=[50, 100] if tiny else [100, 200, 400, 800], trials=2 if tiny else 30,
                    loads=[0.06, 0.14, 0.2] if tiny else list(CAPACITY_LOADS), seed=0)
    data = capacity_study(settings["neurons"], settings["trials"], loads=settings["loads"], seed=settings["seed"])
    return data, settings


# --------------------------------------------------------------------------------------------
# auto-checked exercise
# --------------------------------------------------------------------------------------------
def check_hebbian(fn) -> None:
    """Check a reader's ``fn(patterns (K, N)) -> W (N, N)``: the Hebbian rule (ch1-hebb),
    ``W_ij = (1/N) Σ_μ ξ^μ_i ξ^μ_j`` with a zero diagonal. Prints one line: correct, or what is wrong."""
    def test(f):
        g = torch.Generator().manual_seed(3)
        pats = (2 * torch.randint(0, 2, (3, 8), generator=g) - 1).float()  # K = 3 patterns, N = 8
        got = f(pats.clone())
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 3):
            raise AssertionError("W has shape (K, K) = (3, 3) but must be (N, N) = (8, 8): sum over the "
                                 "patterns, patterns.T @ patterns.")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (8, 8):
            full, off = (pats.T @ pats).double(), ~torch.eye(8, dtype=torch.bool)
            w = got.detach().double().cpu()
            if torch.allclose(w, full / 8):
                raise AssertionError("the diagonal of W must be zero (W_ii = 0: no neuron drives itself); "
                                     "set it with W.fill_diagonal_(0).")
            if torch.allclose(w[off], full[off]):
                raise AssertionError("divide by the number of neurons N: W = Σ_μ ξ^μ ξ^μᵀ / N.")
        assert_close(got, hebbian_weights(pats), "W for 3 patterns of 8 neurons", atol=1e-6, rtol=0)
    return check("Hebbian weights", test, fn)
