"""The seeded study of spontaneous symmetry breaking (book chapter 8): reading it, its statistics,
its figures.

The study (``benchmarks/symmetry_study.sh``; committed under ``hopfield_lab/results/symmetry_cpu/``)
trains the four families with several seeds, the free ones also from *tied* weights
(``init="tied"``: W2 = W1ᵀ, V = 0), the AsymMixer at a few λ and ParaMixer/SymMixer with
``n_iter`` = 2. Its four questions, and the functions that answer them from the result files:

* error bars for the ordering and the cost of tying -- :func:`comparisons` (paired over shared
  seeds, 95 % Student-t intervals from :mod:`hopfield_lab.stats`, grouped by
  :func:`hopfield_lab.results.summarize_runs`), :func:`format_comparisons`,
  :func:`plot_comparisons`; the accuracy-vs-λ figure with error bars is
  :func:`hopfield_lab.demos.training.plot_accuracy_vs_lambda`;
* spontaneous breaking from a tied start -- :func:`cosine_history` (cos∠(W2, W1ᵀ) per seed,
  epoch, branch and block; epoch 0 is the tied start, 1 by construction), :func:`tied_drift`,
  :func:`plot_tied_start`, :func:`plot_tied_blocks`;
* anti-alignment across seeds -- :func:`alignment_by_seed` (per seed and block, in units of the
  random scale 1/sqrt(in · hidden)), :func:`format_alignment_by_seed`, :func:`plot_alignment_by_seed`;
* ``n_iter`` 1 vs 2 -- rows of :func:`comparisons`.

:func:`study_plan` lists the 41 runs of the plan, so a partly finished study says what it lacks
(:func:`progress`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ... import stats
from ...mixer import FAMILIES
from ...results import HOME as RESULTS_HOME
from ...results import compare_groups, summarize_runs
from . import training as tr

SEEDED_FOLDER = "symmetry_cpu"
"""Sub-folder of the committed results holding the seeded CPU study (other models, data and
length than the GPU studies of ``cifar10*/``, which :func:`hopfield_lab.demos.training.study_folders`
reads; this one is read by :func:`load_study`)."""

FREE = ("vanillamixer", "paramixer")
TIED_FAMILIES = ("vanillamixer", "paramixer", "asymmixer")
BRANCHES = ("tokens", "channels")
THRESHOLD = 3.0
"""|cos| beyond this many random scales counts as aligned / anti-aligned (3: a random pair of
matrices goes beyond it in about 3 of 1000 draws)."""


def study_plan(preset: str = "cifar_cpu") -> list[str]:
    """The run names (sweep file stems) of the plan of ``benchmarks/symmetry_study.sh`` (41 runs)
    for the ``*_{preset}`` models: the same sweeps, through :func:`hopfield_lab.cli.sweep_plan`."""
    from ...training.cli import sweep_plan

    m = [f"{f}_{preset}" for f in FAMILIES]
    sweeps = [(m, [0.0], [0, 1, 2, 3, 4], None, None),
              ([f"{f}_{preset}" for f in TIED_FAMILIES], [0.0], [0, 1, 2], None, ["tied"]),
              ([f"asymmixer_{preset}"], [1e-4, 1e-2], [0, 1, 2], None, None),
              ([f"paramixer_{preset}", f"symmixer_{preset}"], None, [0, 1, 2], [2], None)]
    return [p["name"] for models, lams, seeds, ni, inits in sweeps for p in sweep_plan(models, lams, seeds, ni, inits)]


def load_study(root: Optional[Path] = None) -> list[dict]:
    """The committed seeded study's runs (:data:`SEEDED_FOLDER`) as
    :func:`hopfield_lab.demos.training.load_results` reads them; [] when the folder is missing."""
    return tr.load_results(Path(root or RESULTS_HOME) / SEEDED_FOLDER)


def progress(runs: Sequence[dict], preset: str = "cifar_cpu") -> dict:
    """``{"done", "planned", "missing"}``: how many of :func:`study_plan`'s runs the files hold."""
    plan = study_plan(preset)
    have = {Path(r["path"]).stem if r.get("path") else None for r in runs}
    missing = [n for n in plan if n not in have]
    return {"done": len(plan) - len(missing), "planned": len(plan), "missing": missing}


def _is(r: dict, family: str, lam=None, n_iter: int = 1, init: str = "random") -> bool:
    return (r["family"] == family and r.get("n_iter", 1) == n_iter and (r.get("init") or "random") == init
            and (lam is None or (r.get("lam") is not None and float(r["lam"]) == float(lam))))


def select(runs: Sequence[dict], family: str, lam=None, n_iter: int = 1, init: str = "random") -> list[dict]:
    """The runs of one configuration (any seed); ``lam`` only matters for the AsymMixer."""
    return [r for r in runs if _is(r, family, lam, n_iter, init)]


# ------------------------------------------------------------------------------------ comparisons
#: (name, configuration a, configuration b): each row of comparisons() is mean(a) − mean(b)
COMPARISONS = (
    ("cost of tying: ParaMixer − SymMixer", dict(family="paramixer"), dict(family="symmixer")),
    ("vanilla − ParaMixer", dict(family="vanillamixer"), dict(family="paramixer")),
    ("ParaMixer − AsymMixer λ=0", dict(family="paramixer"), dict(family="asymmixer", lam=0.0)),
    ("AsymMixer λ=0 − λ=1e-4", dict(family="asymmixer", lam=0.0), dict(family="asymmixer", lam=1e-4)),
    ("AsymMixer λ=1e-4 − λ=1e-2", dict(family="asymmixer", lam=1e-4), dict(family="asymmixer", lam=1e-2)),
    ("AsymMixer λ=1e-2 − SymMixer", dict(family="asymmixer", lam=1e-2), dict(family="symmixer")),
    ("vanilla: tied − random start", dict(family="vanillamixer", init="tied"), dict(family="vanillamixer")),
    ("ParaMixer: tied − random start", dict(family="paramixer", init="tied"), dict(family="paramixer")),
    ("AsymMixer λ=0: tied − random start", dict(family="asymmixer", lam=0.0, init="tied"),
     dict(family="asymmixer", lam=0.0)),
    ("ParaMixer tied start − SymMixer", dict(family="paramixer", init="tied"), dict(family="symmixer")),
    ("ParaMixer: 2 − 1 iterations", dict(family="paramixer", n_iter=2), dict(family="paramixer")),
    ("SymMixer: 2 − 1 iterations", dict(family="symmixer", n_iter=2), dict(family="symmixer")),
)


def comparisons(runs: Sequence[dict], which: Sequence = COMPARISONS, value: str = "test_acc") -> list[dict]:
    """One row per comparison of ``which``: ``name, a, b`` (the groups of
    :func:`hopfield_lab.results.summarize_runs`, None when the files lack them), ``interval``
    (:class:`hopfield_lab.stats.Interval` of mean(a) − mean(b): paired over shared seeds when
    there are at least two, else Welch's; None when either side has fewer than 2 seeds),
    ``paired`` and ``verdict`` ("resolved", "not resolved" or "not measured")."""
    rows = []
    for name, qa, qb in which:
        ga, gb = (_group(runs, q, value) for q in (qa, qb))
        iv, paired = None, False
        if ga is not None and gb is not None and ga["n"] >= 2 and gb["n"] >= 2:
            paired = len(set(ga["by_seed"]) & set(gb["by_seed"])) >= 2
            iv = compare_groups(ga, gb, paired=True)
        rows.append({"name": name, "a": ga, "b": gb, "interval": iv, "paired": paired,
                     "verdict": "not measured" if iv is None else stats.verdict(iv)})
    return rows


def _group(runs, query: dict, value: str):
    sel = select(runs, **query)
    return summarize_runs(sel, value=value)[0] if sel else None


def find(rows: Sequence[dict], name: str) -> dict:
    """The row of :func:`comparisons` called ``name``."""
    for r in rows:
        if r["name"] == name:
            return r
    raise ValueError(f"no comparison {name!r}; known: {', '.join(r['name'] for r in rows)}")


def format_comparisons(rows: Sequence[dict]) -> str:
    """One line per comparison: the difference of mean test accuracy in points with its 95 %
    interval, the seeds behind it, and the verdict."""
    lines = [f"{'difference of mean test accuracy (points)':<40} {'estimate and 95 % CI':>34}  seeds      verdict"]
    for r in rows:
        iv = r["interval"]
        if iv is None:
            na = 0 if r["a"] is None else r["a"]["n"]
            nb = 0 if r["b"] is None else r["b"]["n"]
            lines.append(f"{r['name']:<40} {'-':>34}  {na} vs {nb}     not measured (needs 2+ seeds each)")
            continue
        seeds = f"{iv.n} paired" if r["paired"] else f"{iv.n[0]} vs {iv.n[1]}"
        lines.append(f"{r['name']:<40} {iv.format(scale=100, digits=1):>34}  {seeds:<10} {r['verdict']}")
    return "\n".join(lines)


def plot_comparisons(rows: Sequence[dict], ax=None, title: Optional[str] = None):
    """A forest plot: each measured comparison's estimate (points) with its 95 % interval as a
    horizontal bar, filled when the interval excludes 0 (resolved), open when not; a vertical
    line at 0. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["interval"] is not None]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.3 * len(rows) + 1.2), constrained_layout=True)
    for i, r in enumerate(rows):
        iv = r["interval"]
        y = len(rows) - 1 - i
        color = "C3" if iv.resolved else "0.45"
        ax.plot([100 * iv.low, 100 * iv.high], [y, y], color=color, lw=2)
        ax.plot([100 * iv.estimate], [y], "o", color=color, mfc=color if iv.resolved else "white", ms=6)
    if not rows:
        ax.text(0.5, 0.5, "no comparison has 2 or more seeds on both sides yet", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["name"].replace("λ", r"$\lambda$") for r in reversed(rows)], fontsize=8)
    ax.set(xlabel="difference of mean test accuracy (percentage points), 95 % CI",
           title=title or "Differences and their 95 % intervals (filled: excludes 0, resolved)")
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


# ------------------------------------------------------------------------------- the tied start
def cosine_history(runs: Sequence[dict], start: Optional[float] = None) -> dict[str, np.ndarray]:
    """cos∠(W2, W1ᵀ) of one configuration's runs: ``{"epochs": (E + 1,), "tokens": (seeds, E + 1,
    blocks), "channels": ...}``. Epoch 0 is the start: ``start`` when given (1.0 for a tied start,
    exact by construction: ``tests/test_mixer.py``), else NaN (not recorded); epochs 1..E come
    from each run's ``symmetry_history``."""
    if not runs:
        raise ValueError("no runs: cosine_history needs the runs of one configuration")
    epochs = [e["epoch"] for e in runs[0]["symmetry_history"]]
    if any([e["epoch"] for e in r["symmetry_history"]] != epochs for r in runs):
        raise ValueError("the runs recorded their symmetry at different epochs; pass one configuration of one study")
    out = {"epochs": np.array([0] + epochs)}
    for branch in BRANCHES:
        per = []
        for r in runs:
            rows = [tr.symmetry_by_block(r, epoch=e)[branch] for e in epochs]
            first = np.full_like(rows[0], math.nan if start is None else float(start))
            per.append(np.stack([first] + rows))
        out[branch] = np.stack(per)
    return out


def random_scales(run: dict) -> dict[str, float]:
    """``{branch: 1/sqrt(in · hidden)}`` of a run's MLPs: the spread of cos∠(W2, W1ᵀ) for
    independent random matrices of those shapes (a unit, not a significance test)."""
    out = {}
    for branch in BRANCHES:
        row = next(x for x in run["symmetry"] if x["branch"] == branch)
        out[branch] = tr.random_cosine_scale(row["in_features"], row["hidden_features"])
    return out


def tied_drift(runs: Sequence[dict]) -> list[dict]:
    """For each family started tied (with its runs): per branch the cosine after the first and the
    last epoch (mean over seeds and blocks, and the range over blocks of the seed means), the
    random-start twin's final block mean, all also in random scales. One dict per (family, branch)."""
    rows = []
    for fam in TIED_FAMILIES:
        lam = 0.0 if fam == "asymmixer" else None
        tied, rand = select(runs, fam, lam, init="tied"), select(runs, fam, lam)
        if not tied:
            continue
        h = cosine_history(tied, start=1.0)
        hr = cosine_history(rand) if rand else None
        scale = random_scales(tied[0])
        for branch in BRANCHES:
            end = h[branch][:, -1].mean(axis=0)                                  # (blocks,) mean over seeds
            rows.append({"family": fam, "label": FAMILIES[fam].label, "branch": branch, "n_seeds": len(tied),
                         "epochs": int(h["epochs"][-1]), "after_1": float(h[branch][:, 1].mean()),
                         "end": float(end.mean()), "end_min": float(end.min()), "end_max": float(end.max()),
                         "end_sd_seeds": float(h[branch][:, -1].mean(axis=1).std(ddof=1)) if len(tied) > 1 else math.nan,
                         "random_end": None if hr is None else float(hr[branch][:, -1].mean()),
                         "scale": scale[branch]})
    return rows


def format_tied_drift(rows: Sequence[dict]) -> str:
    """:func:`tied_drift` as text: the cosine after epoch 1 and at the end (block range), the
    random-start twin's end, and the end in random scales."""
    lines = [f"{'started tied':<18} {'branch':<9} {'epoch 1':>8} {'end (blocks)':>22} {'random start':>13} "
             f"{'end / scale':>12}"]
    for r in rows:
        rnd = "-" if r["random_end"] is None else f"{r['random_end']:+.3f}"
        lines.append(f"{r['label']:<18} {r['branch']:<9} {r['after_1']:>+8.3f} "
                     f"{r['end']:>+7.3f} ({r['end_min']:+.2f}..{r['end_max']:+.2f}) {rnd:>13} "
                     f"{r['end'] / r['scale']:>+12.0f}   ({r['n_seeds']} seeds, {r['epochs']} epochs)")
    return "\n".join(lines)


_COS = r"$\cos\angle(W_2, W_1^\top)$"


def plot_tied_start(runs: Sequence[dict], axes=None):
    """Two panels: test accuracy per epoch of the free families from a tied start (dashed) and a
    random start (solid), with the SymMixer and the AsymMixer at λ = 1e-2; and the block mean of
    cos∠(W2, W1ᵀ) per epoch (both branches; epoch 0 = 1 for the tied starts). Means over seeds.
    Returns the figure (7.5 in wide)."""
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(7.5, 4.4), layout="constrained")
    configs = [(f, 0.0 if f == "asymmixer" else None, init) for f in TIED_FAMILIES for init in ("random", "tied")]
    configs += [("symmixer", None, "random"), ("asymmixer", 1e-2, "random")]
    for fam, lam, init in configs:
        sel = select(runs, fam, lam, init=init)
        if not sel:
            continue
        color = "C7" if (fam, lam) == ("asymmixer", 1e-2) else FAMILIES[fam].color
        ls = "--" if init == "tied" else "-"
        name = FAMILIES[fam].label + (r" $\lambda$=" + tr.format_lam(lam) if lam is not None else "")
        name += ", tied start" if init == "tied" else ""
        acc = np.array([[h["test_acc"] for h in r["history"] if "test_acc" in h] for r in sel])
        axes[0].plot(np.arange(1, acc.shape[1] + 1), 100 * acc.mean(axis=0), ls=ls, color=color, marker="o", ms=3,
                     label=f"{name} ({len(sel)})")
        h = cosine_history(sel, start=1.0 if init == "tied" or fam == "symmixer" else None)
        cos = np.concatenate([h[b] for b in BRANCHES], axis=2).mean(axis=2).mean(axis=0)   # (E + 1,)
        axes[1].plot(h["epochs"], cos, ls=ls, color=color, marker="o", ms=3)
    axes[0].set(xlabel="epoch", ylabel="test accuracy (%)", title="Learning curves (mean over seeds)")
    axes[1].set(xlabel="epoch (0: start)", ylabel=f"block mean of {_COS}", title="Weight symmetry during training")
    axes[0].figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8,
                          title="(number of seeds)", title_fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return axes[0].figure


def plot_tied_blocks(runs: Sequence[dict], axes=None):
    """cos∠(W2, W1ᵀ) per block over training for each family started tied: rows token / channel
    MLPs, one column per family, one line per block (dark: block 0, light: the last), mean over
    seeds; the random start's final block mean as a dotted grey line. Returns the figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    fams = [f for f in TIED_FAMILIES if select(runs, f, 0.0 if f == "asymmixer" else None, init="tied")]
    if not fams:
        raise ValueError("no tied-start runs in these results")
    if axes is None:
        _, axes = plt.subplots(2, len(fams), figsize=(7.5, 4.6), constrained_layout=True, sharex=True, sharey="row",
                               squeeze=False)
    cmap = matplotlib.colormaps["viridis"]
    for j, fam in enumerate(fams):
        lam = 0.0 if fam == "asymmixer" else None
        h = cosine_history(select(runs, fam, lam, init="tied"), start=1.0)
        rand = select(runs, fam, lam)
        for i, branch in enumerate(BRANCHES):
            ax = axes[i][j]
            m = h[branch].mean(axis=0)                                         # (E + 1, blocks)
            nb = m.shape[1]
            for b in range(nb):
                ax.plot(h["epochs"], m[:, b], color=cmap(0.85 * b / max(1, nb - 1)), marker="o", ms=2.5, lw=1.2,
                        label=f"block {b}")
            if rand:
                ax.axhline(float(np.mean([tr.symmetry_by_block(r)[branch].mean() for r in rand])), color="0.5",
                           ls=":", lw=1.2, label="random start, end")
            ax.set_title(f"{FAMILIES[fam].label}: {branch}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            if j == 0:
                ax.set_ylabel(_COS, fontsize=9)
            if i == 1:
                ax.set_xlabel("epoch (0: tied start)", fontsize=9)
    axes[0][-1].legend(fontsize=8, loc="best")
    return axes[0][0].figure


# ------------------------------------------------------------------------ anti-alignment by seed
def alignment_by_seed(runs: Sequence[dict], families: Sequence[str] = FREE, threshold: float = THRESHOLD) -> list[dict]:
    """Per free family (random start, n_iter 1), branch and block: the final cos∠(W2, W1ᵀ) of every
    seed in random scales, ``z (seeds,)``, and how many seeds are below ``-threshold``
    (``anti``), above ``+threshold`` (``aligned``) or between. One dict per (family, branch, block)."""
    rows = []
    for fam in families:
        sel = select(runs, fam)
        if not sel:
            continue
        scale = random_scales(sel[0])
        for branch in BRANCHES:
            cos = np.stack([tr.symmetry_by_block(r)[branch] for r in sel])           # (seeds, blocks)
            for b in range(cos.shape[1]):
                z = cos[:, b] / scale[branch]
                rows.append({"family": fam, "label": FAMILIES[fam].label, "branch": branch, "block": b,
                             "seeds": [r["seed"] for r in sel], "cos": cos[:, b], "z": z,
                             "anti": int((z < -threshold).sum()), "aligned": int((z > threshold).sum()),
                             "n": len(sel), "scale": scale[branch]})
    return rows


def _z(v: float) -> str:
    return f"{round(float(v)) + 0:+d}"                       # no "-0"


def format_alignment_by_seed(rows: Sequence[dict], threshold: float = THRESHOLD) -> str:
    """:func:`alignment_by_seed` as text, one line per family and branch: per block how many seeds
    are anti-aligned (``-``), aligned (``+``), and the range of z over seeds."""
    lines = [f"per block: seeds anti-aligned (z < -{threshold:g}) / aligned (z > +{threshold:g}) of n; "
             "z = cos / random scale (min..max over seeds)"]
    for (fam, branch) in dict.fromkeys((r["family"], r["branch"]) for r in rows):
        sub = [r for r in rows if r["family"] == fam and r["branch"] == branch]
        cells = [f"b{r['block']}: {r['anti']}-/{r['aligned']}+ of {r['n']} ({_z(r['z'].min())}..{_z(r['z'].max())})"
                 for r in sub]
        lines.append(f"{sub[0]['label']:<17} {branch:<8} scale {sub[0]['scale']:.4f}: " + "; ".join(cells))
    return "\n".join(lines)


def alignment_verdict(rows: Sequence[dict]) -> dict[tuple[str, str], str]:
    """``{(family, branch): "every seed" | "some seeds" | "no seed"}``: in how many seeds the
    MLPs of that family and branch are anti-aligned in the majority of their blocks."""
    out = {}
    for (fam, branch) in dict.fromkeys((r["family"], r["branch"]) for r in rows):
        sub = [r for r in rows if r["family"] == fam and r["branch"] == branch]
        n = sub[0]["n"]
        per_seed = np.sum([r["z"] < -THRESHOLD for r in sub], axis=0)              # (seeds,) anti blocks
        k = int((per_seed > len(sub) / 2).sum())
        out[(fam, branch)] = "every seed" if k == n else ("no seed" if k == 0 else f"{k} of {n} seeds")
    return out


def plot_alignment_by_seed(rows: Sequence[dict], axes=None, threshold: float = THRESHOLD):
    """Final cos∠(W2, W1ᵀ) of every seed per block in random scales: token MLPs (left), channel
    MLPs (right), one marker per seed, the free families side by side; the band ±``threshold``.
    Returns the figure (7.5 in wide)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(7.5, 3.2), constrained_layout=True)
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for ax, branch in zip(axes, BRANCHES):
        for k, fam in enumerate(fams):
            sub = [r for r in rows if r["family"] == fam and r["branch"] == branch]
            off = (k - (len(fams) - 1) / 2) * 0.25
            for r in sub:
                ax.plot(np.full(len(r["z"]), r["block"] + off), r["z"], "o", ms=4, alpha=0.75,
                        color=FAMILIES[fam].color, label=f"{r['label']} ({r['n']} seeds)" if r["block"] == 0 else None)
        ax.axhspan(-threshold, threshold, color="0.85", lw=0, label=rf"within $\pm${threshold:g} scales")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="block", ylabel=rf"{_COS} / random scale", title=f"{branch} MLPs, every seed")
        ax.set_xticks(sorted({r["block"] for r in rows}))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[1].legend(fontsize=8, loc="best")
    return axes[0].figure


# ---------------------------------------------------------------------------- the answers, as text
def _iv_text(row: dict) -> str:
    iv = row["interval"]
    if iv is None:
        return "not measured (needs 2 or more seeds on each side)"
    seeds = f"{iv.n} paired seeds" if row["paired"] else f"{iv.n[0]} and {iv.n[1]} seeds"
    return f"{100 * iv.estimate:+.1f} points (95 % CI {100 * iv.low:+.1f} to {100 * iv.high:+.1f}, {seeds}): {row['verdict']}"


def answers(runs: Sequence[dict]) -> dict[str, list[str]]:
    """The study's four answers as sentences, every number read from ``runs``:
    ``{"ordering", "tied", "anti", "n_iter"}`` -> lines. A configuration the files lack is
    reported as not measured, never guessed."""
    rows = comparisons(runs)
    out: dict[str, list[str]] = {"ordering": [], "tied": [], "anti": [], "n_iter": []}
    for r in rows[:6]:
        out["ordering"].append(f"{r['name']}: {_iv_text(r)}.")
    drift = {(d["family"], d["branch"]): d for d in tied_drift(runs)}
    for fam in TIED_FAMILIES:
        ds = [drift[(fam, b)] for b in BRANCHES if (fam, b) in drift]
        if not ds:
            out["tied"].append(f"{FAMILIES[fam].label}: no tied-start runs in the files.")
            continue
        parts = []
        for d in ds:
            how = ("stay tied" if d["end_min"] > 0.99 else "move slightly away from tied" if d["end_min"] > 0.9
                   else "leave the tied configuration")
            parts.append(f"{d['branch'][:-1]} MLPs {how}: block-mean cosine {d['after_1']:.2f} after epoch 1 and "
                         f"{d['end']:.2f} after epoch {d['epochs']} (blocks {d['end_min']:.2f} to {d['end_max']:.2f}; "
                         f"{d['end'] / d['scale']:.0f} random scales"
                         + ("" if d["random_end"] is None else f"; the random start ends at {d['random_end']:+.3f}")
                         + ")")
        lam = " λ=0" if fam == "asymmixer" else ""
        out["tied"].append(f"{FAMILIES[fam].label}{lam} started tied ({ds[0]['n_seeds']} seeds): " + "; ".join(parts) + ".")
    for r in rows[6:10]:
        out["tied"].append(f"test accuracy, {r['name']}: {_iv_text(r)}.")
    for (fam, branch), v in alignment_verdict(alignment_by_seed(runs)).items():
        n = len(select(runs, fam))
        out["anti"].append(f"{FAMILIES[fam].label} {branch[:-1]} MLPs: anti-aligned (below −{THRESHOLD:g} random scales) "
                           f"in most blocks in {v} (of {n}).")
    for r in rows[10:]:
        out["n_iter"].append(f"{r['name']}: {_iv_text(r)}.")
    return out


def format_answers(ans: dict[str, list[str]], which: Sequence[str] = ("ordering", "tied", "anti", "n_iter")) -> str:
    """:func:`answers` as indented text, one block per question."""
    titles = {"ordering": "the ordering and the cost of tying (differences of mean test accuracy)",
              "tied": "started from tied weights", "anti": "anti-alignment across seeds", "n_iter": "n_iter 2 vs 1"}
    lines = []
    for k in which:
        lines.append(f"{titles[k]}:")
        lines += [f"  - {s}" for s in ans[k]]
    return "\n".join(lines)
