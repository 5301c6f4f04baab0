"""Demos of chapter 8 (training the Mixer family; symmetry of the trained weights).

Reading results (the JSON files of :func:`hopfield_lab.train.train` / ``python -m hopfield_lab sweep``):

* :func:`load_results` -- every result JSON of a folder, checked and sorted (family, n_iter, λ, seed);
  :func:`study_folders` lists the committed CIFAR-10 studies that ship with the library.
* :func:`by_study` -- runs of different lengths kept apart (one study per number of epochs);
  :func:`group_runs` -- the seeds of one configuration together: the library's one grouping,
  :func:`hopfield_lab.results.summarize_runs` (mean, sd and Student-t interval over seeds).
* :func:`results_table` / :func:`format_table` -- one row per configuration: model, λ, params,
  accuracy (mean ± standard deviation over seeds when there are several, and the 95 % interval
  of the mean), img/s.
* :func:`settings_summary` -- hardware, data and training settings, read from the files themselves.
* :func:`load_reference` / :func:`reference_comparison` / :func:`format_comparison` -- the 30-epoch
  reference accuracies (measured by this project with the paper's official model code; one home:
  ``hopfield_lab/results/cifar10_reference/``) beside a study's.
* :func:`alignment` / :func:`format_alignment` -- cos∠(W2, W1ᵀ) per block and branch of the free
  models, in units of the cosine of independent random matrices.

Figures (each draws into given axes or a new figure and returns the figure; several seeds of one
configuration are drawn as their mean with a ±1 standard-deviation band or bar, one seed as a
plain line; runs of different studies are refused, plot one study at a time):

* :func:`plot_accuracy_vs_lambda` -- AsymMixer test accuracy against λ, with the other models as lines.
* :func:`plot_learning_curves` -- test accuracy (or any history key) per epoch.
* :func:`plot_symmetry_blocks` -- a symmetry metric per block and branch (cos∠(W2, W1ᵀ) by default).
* :func:`plot_symmetry_history` -- the block-mean of a metric over the epochs of training.

Live work: :func:`live_config` / :func:`quick_run` (a small run through :func:`hopfield_lab.train.train`),
:func:`full_mode_estimate` (expected time of the full-mode live run on a Colab T4),
:func:`make_widget` (pick an AsymMixer λ: its learning curve and weight symmetry against the other
models) and :func:`lambda_player`, the widget's static twin. :func:`check_weight_cosine` checks the
chapter's coding exercise.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from ...mixer import FAMILIES, family_of
from ...results import HOME as RESULTS_HOME
from ...results import RunResult, format_lam, load_result, summarize_runs
from ...results import load as load_committed

# ------------------------------------------------------------------------------------------ reading
def _breaks(result: dict) -> bool:
    """True for runs of a family with a symmetry-breaking weight (AsymMixer: the λ sweep)."""
    return family_of(result["model"]).has_breaking


def n_iter_of(result: dict) -> int:
    """Weight-shared iterations per block of a run: its ``n_iter`` (RunResult, schema 3), else
    ``config.model_overrides.n_iter`` (default 1)."""
    if result.get("n_iter") is not None:
        return int(result["n_iter"])
    over = (result.get("config") or {}).get("model_overrides") or {}
    return int(over.get("n_iter", 1))


def label(result: dict) -> str:
    """A short name of a run: ``"SymMixer"``, ``"AsymMixer λ=1e-02"``, ``"ParaMixer, n_iter 2"``.

    The seed is not part of it: runs that differ only in their seed share a label (and a line)."""
    fam = family_of(result["model"])
    text = fam.label
    if fam.has_breaking:
        lam = result.get("lam")
        text += f" λ={format_lam(lam)}" if lam is not None else ""
    if n_iter_of(result) != 1:
        text += f", n_iter {n_iter_of(result)}"
    if result.get("init", "random") != "random":
        text += f", {result['init']} start"
    return text


def study_of(result: dict) -> str:
    """The study a run belongs to: ``"12 epochs"``. Runs of different lengths are different studies
    (their accuracies are not comparable), and the figures refuse to mix them."""
    return f"{int(result['epochs'])} epochs"


def _sort_key(r: dict):
    lam = r.get("lam")
    return (int(r.get("epochs", 0)), list(FAMILIES).index(family_of(r["model"]).name), n_iter_of(r),
            r.get("init") or "random", -1.0 if lam is None else float(lam), r.get("seed", 0), r["model"])


REFERENCE_FOLDER = "cifar10_reference"
"""Sub-folder of the committed results holding the 30-epoch reference accuracies (not run records)."""

def study_folders(root: Optional[Path] = None) -> list[Path]:
    """The committed CIFAR-10 study folders: ``cifar10/`` and any ``cifar10_*/`` beside it (a longer
    or multi-seed study), except :data:`REFERENCE_FOLDER`. ``root`` defaults to the package's
    results folder (``hopfield_lab.results.HOME``)."""
    root = Path(root or RESULTS_HOME)
    found = [p for p in sorted(root.glob("cifar10*")) if p.is_dir() and p.name != REFERENCE_FOLDER]
    return [p for p in found if p.name == "cifar10" or p.name.startswith("cifar10_")]


def load_results(directory, pattern: str = "*.json") -> list[dict]:
    """Read the result files of ``directory`` (non-recursive; or a list of folders) as
    :class:`~hopfield_lab.results.RunResult` (older layouts upgraded), sorted by length, family,
    n_iter, λ and seed.

    A missing folder gives an empty list (the chapter then says that no results exist). Files that
    are not training results, or of a model outside the registered families, are skipped with a
    warning; runs that did not finish (stopped or diverged) are skipped too. Each returned dict is
    the result's :meth:`~hopfield_lab.results.RunResult.to_dict` plus ``"path"``, ``"family"``,
    ``"n_iter"``, ``"label"`` and ``"study"`` (:func:`_view`).
    """
    if isinstance(directory, (list, tuple)):
        return sorted((r for d in directory for r in load_results(d, pattern)), key=_sort_key)
    d = Path(directory)
    if not d.is_dir():
        return []
    out = []
    for path in sorted(d.glob(pattern)):
        try:
            result = load_result(path)
        except ValueError as exc:
            warnings.warn(f"{exc}; skipped")
            continue
        try:
            family_of(result.model)
        except ValueError:
            warnings.warn(f"{path}: model {result.model!r} is not in a registered family; skipped")
            continue
        if not result.finished:
            warnings.warn(f"{path}: run did not finish ({result.status}); skipped")
            continue
        out.append(_view(result, path=str(path)))
    return sorted(out, key=_sort_key)


def _view(result: RunResult, **extra) -> dict:
    """The plain dict the tables and figures read: the result plus its ``family``, ``n_iter``,
    ``label`` and ``study``."""
    r = dict(result.to_dict(), **extra)
    r.update(family=family_of(result.model).name, n_iter=int(result.n_iter))
    r["label"] = label(r)
    r["study"] = study_of(r)
    return r


def by_study(results: Iterable[dict]) -> dict[str, list[dict]]:
    """``{study: runs}`` (:func:`study_of`), shortest study first; the order of runs is kept."""
    out: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: int(r["epochs"])):
        out.setdefault(study_of(r), []).append(r)
    return out


def _one_study(results: Sequence[dict], what: str) -> None:
    studies = list(dict.fromkeys(study_of(r) for r in results))
    if len(studies) > 1:
        raise ValueError(f"{what}: the runs come from {len(studies)} studies ({', '.join(studies)}), whose "
                         "accuracies are not comparable; split them with by_study(results) and show one "
                         "study at a time")


GROUP_BY = ("epochs", "model", "lam", "n_iter", "init")
"""What makes a configuration in the book's tables and figures (one study = one length)."""


def group_runs(results: Iterable[dict]) -> list[dict]:
    """The runs that differ only in their seed, together: :func:`hopfield_lab.results.summarize_runs`
    by :data:`GROUP_BY` (one dict per configuration, in the order of first appearance, with ``n,
    seeds, values, by_seed, mean, sd, interval, runs``), plus ``label, family, study``."""
    groups = summarize_runs(results, by=GROUP_BY)
    for g in groups:
        r0 = g["runs"][0]
        g.update(label=r0.get("label") or label(r0), family=family_of(g["model"]).name, study=study_of(r0))
    return groups


def _random_init(r: dict) -> bool:
    return (r.get("init") or "random") == "random"


def results_table(results: Iterable[dict]) -> list[dict]:
    """One row per configuration (:func:`group_runs`): ``label, model, lam, n_iter, init, study,
    epochs, seeds, n_seeds, seed, params, test_acc, test_acc_sd, test_acc_ci, best_test_acc,
    img_per_s, device``.

    Accuracies and img/s are means over the seeds; ``test_acc_sd`` is their standard deviation
    (NaN for one seed), ``test_acc_ci`` the 95 % Student-t interval of the mean
    (:class:`hopfield_lab.stats.Interval`, None for one seed); ``seed`` is the seed of a single
    run, None for several."""
    rows = []
    for g in group_runs(results):
        runs = g["runs"]
        acc, sd, n = g["mean"], g["sd"], g["n"]
        best = [r["best_test_acc"] for r in runs if r.get("best_test_acc") is not None]
        ips = [r["img_per_s"] for r in runs if r.get("img_per_s")]
        rows.append({
            "label": g["label"], "model": g["model"], "lam": g["lam"], "n_iter": g["n_iter"], "init": g["init"],
            "study": g["study"], "test_acc_ci": g["interval"],
            "seeds": g["seeds"], "n_seeds": n, "seed": g["seeds"][0] if n == 1 else None,
            "params": runs[0].get("params"), "epochs": runs[0].get("epochs_done", runs[0].get("epochs")),
            "test_acc": acc, "test_acc_sd": sd, "best_test_acc": float(np.mean(best)) if best else None,
            "img_per_s": float(np.mean(ips)) if ips else None, "device": runs[0].get("device"),
        })
    return rows


def _pct(mean: float, sd: float = math.nan) -> str:
    return f"{100 * mean:.1f}%" if math.isnan(sd) else f"{100 * mean:.1f}±{100 * sd:.1f}%"


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width text table of :func:`results_table` rows (accuracies in %; ``mean±sd`` and a
    seeds column when a configuration has several seeds)."""
    multi = any(r.get("n_seeds", 1) > 1 for r in rows)
    head = f"{'run':<26} {'params':>9} {'epochs':>6} {'test acc':>{12 if multi else 8}} {'best':>6} {'img/s':>8}"
    head += f" {'seeds':>5} {'95 % CI of the mean':>20}" if multi else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        params = f"{r['params'] / 1e6:.2f} M" if r.get("params") else "-"
        ips = f"{r['img_per_s']:,.0f}" if r.get("img_per_s") else "-"
        best = f"{100 * r['best_test_acc']:.1f}" if r.get("best_test_acc") is not None else "-"
        acc = _pct(r["test_acc"], r.get("test_acc_sd", math.nan))
        line = f"{r['label']:<26} {params:>9} {r['epochs']!s:>6} {acc:>{12 if multi else 8}} {best:>6} {ips:>8}"
        ci = r.get("test_acc_ci")
        ci = f"{100 * ci.low:.1f} to {100 * ci.high:.1f}%" if ci is not None else "-"
        lines.append(line + (f" {r.get('n_seeds', 1):>5} {ci:>20}" if multi else ""))
    return "\n".join(lines)


def _distinct(values) -> str:
    vals = []
    for v in values:
        if v not in vals:
            vals.append(v)
    return " / ".join(str(v) for v in vals) if vals else "unknown"


def settings_summary(results: Sequence[dict]) -> dict[str, str]:
    """Hardware, data and training settings of a set of runs, as read from their JSON files.

    Returns ``{"runs", "hardware", "data", "training"}`` strings; a setting that differs between
    runs is listed with all its values (``a / b``).
    """
    if not results:
        return {"runs": "no result files", "hardware": "-", "data": "-", "training": "-"}
    cfg = [r.get("config", {}) for r in results]
    hw = (f"{_distinct(r.get('device') for r in results)} x{_distinct(r.get('world_size', 1) for r in results)}"
          f", torch {_distinct(r.get('torch_version') for r in results)}"
          f", autocast {_distinct(r.get('amp') or 'off' for r in results)}"
          f", torch.compile {_distinct(c.get('compile', False) for c in cfg)}")
    data = (f"{_distinct(r.get('dataset') for r in results)}: {_distinct(r.get('n_train') for r in results)} train /"
            f" {_distinct(r.get('n_test') for r in results)} test images,"
            f" {_distinct(r.get('img_size') for r in results)} px")
    aug = []
    for c in cfg:
        a = []
        if c.get("crop_padding"):
            a.append(f"{c.get('pad_mode', 'reflect')}-pad-{c['crop_padding']} crop")
        if c.get("flip"):
            a.append("flip")
        aug.append(" + ".join(a) or "none")
    train = (f"{_distinct(r.get('epochs') for r in results)} epochs, batch {_distinct(c.get('batch_size') for c in cfg)},"
             f" AdamW lr {_distinct(c.get('lr') for c in cfg)} ({_distinct(c.get('schedule') for c in cfg)}),"
             f" weight decay {_distinct(c.get('weight_decay') for c in cfg)},"
             f" label smoothing {_distinct(c.get('label_smoothing') for c in cfg)},"
             f" augmentation {_distinct(aug)}, seeds {', '.join(str(x) for x in sorted({r.get('seed') for r in results}, key=str))}")
    finished = _distinct((r.get("finished_at") or "?")[:10] for r in results)
    return {"runs": f"{len(results)} runs, finished {finished}", "hardware": hw, "data": data, "training": train}


def lambda_stats(results: Sequence[dict], n_iter: int = 1) -> dict[str, np.ndarray | list]:
    """The AsymMixer runs with ``n_iter`` (random start) by λ (one study): ``{"lams", "mean", "sd",
    "n", "low", "high", "values"}``, sorted by λ; ``values[i]`` are the test accuracies of the seeds
    at ``lams[i]``, ``low``/``high`` the 95 % t interval of the mean (NaN for one seed)."""
    _one_study(results, "lambda_stats")
    groups = sorted((g for g in group_runs(r for r in results if _breaks(r) and n_iter_of(r) == n_iter
                                           and _random_init(r) and r.get("lam") is not None)),
                    key=lambda g: g["lam"])
    iv = [g["interval"] for g in groups]
    return {"lams": np.array([g["lam"] for g in groups]), "mean": np.array([g["mean"] for g in groups]),
            "sd": np.array([g["sd"] for g in groups]), "n": np.array([g["n"] for g in groups], dtype=int),
            "low": np.array([math.nan if i is None else i.low for i in iv]),
            "high": np.array([math.nan if i is None else i.high for i in iv]),
            "values": [g["values"] for g in groups]}


def lambda_curve(results: Sequence[dict], n_iter: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(lams, test_accs)`` of the AsymMixer runs with ``n_iter``, sorted by λ (seeds averaged)."""
    s = lambda_stats(results, n_iter)
    return s["lams"], s["mean"]


def reference_groups(results: Sequence[dict], n_iter: int = 1) -> dict[str, dict]:
    """``{family: group}`` (:func:`group_runs`) of each family without a breaking weight (runs with
    ``n_iter``, random start; one study)."""
    _one_study(results, "reference_groups")
    return {g["family"]: g for g in group_runs(r for r in results if not _breaks(r) and n_iter_of(r) == n_iter
                                               and _random_init(r))}


def reference_stats(results: Sequence[dict], n_iter: int = 1) -> dict[str, tuple[float, float, int]]:
    """``{family: (mean, sd, n)}`` of the test accuracy of each family without a breaking weight
    (runs with ``n_iter``, random start; one study)."""
    return {f: (g["mean"], g["sd"], g["n"]) for f, g in reference_groups(results, n_iter).items()}


def reference_accuracies(results: Sequence[dict], n_iter: int = 1) -> dict[str, float]:
    """Mean test accuracy per family without a breaking weight (runs with ``n_iter``): ``{family: acc}``."""
    return {f: s[0] for f, s in reference_stats(results, n_iter).items()}


def tying_cost(results: Sequence[dict]) -> Optional[float]:
    """SymMixer minus ParaMixer test accuracy (means over seeds; n_iter 1), or None when a family is missing."""
    ref = reference_accuracies(results)
    return ref["symmixer"] - ref["paramixer"] if {"symmixer", "paramixer"} <= set(ref) else None


# ------------------------------------------------------------------------------- the 30-epoch reference
REFERENCE_FILE = f"{REFERENCE_FOLDER}/official_code_30ep.json"


def load_reference() -> dict:
    """The 30-epoch reference accuracies (``hopfield_lab/results/cifar10_reference/``): measured by
    this project with the paper's official model code on one H100, not numbers from the paper.

    Returns the JSON: ``{"source", "settings", "runs": [{"family", "lam", "test_acc",
    "epochs_done", ...}]}`` (see that folder's README)."""
    ref = load_committed(REFERENCE_FILE)
    for run in ref.get("runs", []):
        family_of(run["family"])                # a ValueError names an unknown family
        if not 0.0 <= float(run["test_acc"]) <= 1.0:
            raise ValueError(f"{REFERENCE_FILE}: test_acc {run['test_acc']!r} is not a fraction in [0, 1]")
    return ref


def _ref_label(run: dict) -> str:
    return label({"model": run["family"], "lam": run.get("lam")})


def reference_comparison(results: Sequence[dict], reference: dict) -> list[dict]:
    """A study's configurations (n_iter 1) beside the reference runs, matched by family and λ.

    One row per configuration of either, in family then λ order: ``label, family, lam, study``
    (mean, sd, n seeds, or None when the study lacks it) and ``ref`` (the reference accuracy or
    None), ``ref_epochs`` (epochs the reference run completed) and ``ref_epochs_planned``."""
    _one_study(results, "reference_comparison")
    planned = int(reference["settings"]["epochs"])
    rows: dict[tuple, dict] = {}

    def row(family: str, lam):
        key = (family, None if lam is None else float(lam))
        if key not in rows:
            rows[key] = {"label": label({"model": family, "lam": lam}), "family": family,
                         "lam": None if lam is None else float(lam), "study": None, "ref": None,
                         "ref_epochs": None, "ref_epochs_planned": planned}
        return rows[key]

    for g in group_runs(r for r in results if n_iter_of(r) == 1 and _random_init(r)):
        lam = g["lam"] if family_of(g["family"]).has_breaking else None
        row(g["family"], lam)["study"] = (g["mean"], g["sd"], g["n"])
    for run in reference["runs"]:
        fam = family_of(run["family"]).name
        r = row(fam, run.get("lam") if family_of(fam).has_breaking else None)
        r["ref"], r["ref_epochs"] = float(run["test_acc"]), int(run.get("epochs_done", planned))
    order = list(FAMILIES)
    return sorted(rows.values(), key=lambda r: (order.index(r["family"]), -1.0 if r["lam"] is None else r["lam"]))


def format_comparison(rows: Sequence[dict], study: str) -> str:
    """:func:`reference_comparison` rows as a text table; reference runs that stopped before their
    planned epochs are marked ``*`` (explained under the table)."""
    ref_head = f"reference, {rows[0]['ref_epochs_planned']} epochs" if rows else "reference"
    head = f"{'run':<20} {'this study, ' + study:>22} {ref_head:>22}"
    lines = [head, "-" * len(head)]
    short = False
    for r in rows:
        st = "-" if r["study"] is None else _pct(r["study"][0], r["study"][1])
        if r["ref"] is None:
            ref = "-"
        else:
            star = r["ref_epochs"] < r["ref_epochs_planned"]
            short |= star
            ref = _pct(r["ref"]) + ("*" if star else " ")
        lines.append(f"{r['label']:<20} {st:>22} {ref:>22}")
    if short:
        stopped = sorted({r["ref_epochs"] for r in rows if r["ref"] is not None
                          and r["ref_epochs"] < r["ref_epochs_planned"]})
        lines.append(f"* stopped after {'/'.join(map(str, stopped))} of {rows[0]['ref_epochs_planned']} epochs "
                     "(time budget): the schedule did not quite finish")
    return "\n".join(lines)


# ------------------------------------------------------------------------- alignment of free weights
def random_cosine_scale(in_features: int, hidden_features: int) -> float:
    """Standard deviation of cos∠(W2, W1ᵀ) for independent random W1 (hidden, in), W2 (in, hidden):
    ``1/sqrt(in · hidden)`` (Exercise ex-train-cosine)."""
    return 1.0 / math.sqrt(int(in_features) * int(hidden_features))


def alignment(results: Sequence[dict], families: Sequence[str] = ("vanillamixer", "paramixer"),
              metric: str = "cosine") -> list[dict]:
    """cos∠(W2, W1ᵀ) of the trained free models per block and branch, in units of the random scale.

    One row per configuration (n_iter 1) of ``families`` and branch: ``label, branch, cos (blocks,)``
    (mean over seeds), ``sd (blocks,)`` (over seeds, NaN for one), ``n_seeds``, ``scale``
    (:func:`random_cosine_scale` of that branch's shapes) and ``z = cos / scale``."""
    _one_study(results, "alignment")
    rows = []
    for g in group_runs(r for r in results if n_iter_of(r) == 1 and _random_init(r)
                        and family_of(r["model"]).name in families):
        runs = [r for r in g["runs"] if r.get("symmetry")]
        if not runs:
            continue
        for branch in ("tokens", "channels"):
            per_seed = np.stack([symmetry_by_block(r, metric)[branch] for r in runs])      # (seeds, blocks)
            row0 = next(x for x in runs[0]["symmetry"] if x["branch"] == branch)
            scale = random_cosine_scale(row0["in_features"], row0["hidden_features"])
            cos = per_seed.mean(axis=0)
            rows.append({"label": g["label"], "branch": branch, "cos": cos,
                         "sd": per_seed.std(axis=0, ddof=1) if len(runs) > 1 else np.full(cos.shape, math.nan),
                         "n_seeds": len(runs), "scale": scale, "z": cos / scale})
    return rows


def _blocks_text(idx: np.ndarray) -> str:
    return ", ".join(str(int(i)) for i in idx)


def format_alignment(rows: Sequence[dict], threshold: float = 3.0) -> str:
    """:func:`alignment` rows as text: the cosine per block, then which blocks are anti-aligned
    (below ``-threshold`` random scales), aligned (above ``+threshold``) or within chance, with
    the range of their cosines in plain and in random-scale units."""
    lines = []
    for r in rows:
        cos, z = np.asarray(r["cos"]), np.asarray(r["z"])
        seeds = f", mean of {r['n_seeds']} seeds" if r["n_seeds"] > 1 else ""
        lines.append(f"{r['label']:<17} {r['branch']:<8} cos per block {' '.join(f'{c:+.3f}' for c in cos)}{seeds}")
        parts = []
        for name, mask in (("anti-aligned", z < -threshold), ("aligned", z > threshold)):
            idx = np.flatnonzero(mask)
            if len(idx):
                c, zz = cos[idx], z[idx]
                rng = (f"cos {c.min():+.3f}" if len(idx) == 1 else f"cos {c.min():+.3f} to {c.max():+.3f}")
                zr = (f"{zz.min():+.0f}" if len(idx) == 1 else f"{zz.min():+.0f} to {zz.max():+.0f}")
                parts.append(f"{name} in block{'s' if len(idx) > 1 else ''} {_blocks_text(idx)} ({rng}, {zr} scales)")
        idx = np.flatnonzero(np.abs(z) <= threshold)
        if len(idx):
            parts.append(f"within ±{threshold:g} scales in block{'s' if len(idx) > 1 else ''} {_blocks_text(idx)}")
        lines.append(f"{'':<26} random scale {r['scale']:.4f}: " + "; ".join(parts))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ figures
def _ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def plot_accuracy_vs_lambda(results: Sequence[dict], ax=None, n_iter: int = 1, title: Optional[str] = None):
    """AsymMixer test accuracy against λ (symlog axis, so λ = 0 shows), the other families as
    horizontal lines; one study. With several seeds: the mean, its 95 % Student-t interval as bars
    (:mod:`hopfield_lab.stats`) and the seeds as dots; the other families: the interval of their
    mean as a band. One seed: plain points and lines (no error bar exists). Returns the figure."""
    _one_study(results, "plot_accuracy_vs_lambda")
    ax = _ax(ax, (6.4, 4.2))
    s = lambda_stats(results, n_iter)
    lams = s["lams"]
    multi = bool(len(lams)) and int(s["n"].max()) > 1
    if len(lams):
        fam = next(family_of(r["model"]) for r in results if _breaks(r))
        ax.plot(lams, 100 * s["mean"], "o-", color=fam.color,
                label=f"{fam.label}($\\lambda$)" + (": mean, 95 % CI" if multi else ""))
        if multi:
            lo, hi = 100 * (s["mean"] - s["low"]), 100 * (s["high"] - s["mean"])
            ax.errorbar(lams, 100 * s["mean"], yerr=np.nan_to_num(np.vstack([lo, hi])), fmt="none",
                        ecolor=fam.color, capsize=3, lw=1.2)
            xs = np.concatenate([[l] * len(v) for l, v in zip(lams, s["values"])])
            ax.scatter(xs, 100 * np.concatenate(s["values"]), s=9, color=fam.color, alpha=0.5, zorder=3)
        positive = lams[lams > 0]
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1e-6)
    for name, g in reference_groups(results, n_iter).items():
        fam = FAMILIES[name]
        text = f"{fam.label}: {_pct(g['mean'], g['sd']).replace('%', ' %')}" + (f" ({g['n']} seeds)" if g["n"] > 1 else "")
        ax.axhline(100 * g["mean"], ls="--", color=fam.color, label=text)
        if g["interval"] is not None:
            ax.axhspan(100 * g["interval"].low, 100 * g["interval"].high, color=fam.color, alpha=0.15, lw=0)
    ax.set(xlabel="symmetry-breaking penalty $\\lambda$ (symlog scale)", ylabel="test accuracy (%)",
           title=title or "Test accuracy against the penalty $\\lambda$")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure


def _color(g: dict, groups: Sequence[dict]):
    """One colour per family; the configurations with a breaking weight (the λ sweep) shaded light
    to dark red in the order given."""
    sweep = [q for q in groups if family_of(q["model"]).has_breaking]
    if family_of(g["model"]).has_breaking and len(sweep) > 1:
        import matplotlib

        return matplotlib.colormaps["Reds"](0.35 + 0.6 * sweep.index(g) / (len(sweep) - 1))
    return family_of(g["model"]).color


def _line_style(g: dict, groups: list[dict], highlight: Optional[str]):
    """Colour (:func:`_color`), label, line width and line style of configuration ``g`` among
    ``groups``; ``highlight`` (a label) drawn thick; n_iter > 1 dashed."""
    lab = g["label"]
    lw = 2.5 if lab == highlight else (1.0 if highlight else 1.5)
    return _color(g, groups), _legend_text(lab), lw, "--" if g["n_iter"] > 1 else "-"


def _legend_text(lab: str) -> str:
    """A run label in figure text: ``n_iter`` as mathtext."""
    return lab.replace("n_iter", r"$n_\mathrm{iter}$")


def _mean_band(ax, x, per_seed: np.ndarray, color, lw, ls, lab, **kw):
    """Plot the mean over seeds (rows of ``per_seed``) and, for several seeds, a ±1 sd band."""
    mean = per_seed.mean(axis=0)
    n = per_seed.shape[0]
    ax.plot(x, mean, lw=lw, ls=ls, color=color, label=lab + (f" ({n} seeds)" if n > 1 else ""), **kw)
    if n > 1:
        sd = per_seed.std(axis=0, ddof=1)
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)


def plot_learning_curves(results: Sequence[dict], key: str = "test_acc", ax=None, title: Optional[str] = None,
                         highlight: Optional[str] = None):
    """One line per configuration: ``history[key]`` per epoch (accuracies in %); the mean over
    seeds with a ±1 sd band when there are several. ``highlight`` (a label) is drawn thick, the
    others thin. Returns the figure."""
    _one_study(results, "plot_learning_curves")
    ax = _ax(ax, (6.4, 4.2))
    pct = key.endswith("acc")
    groups = group_runs(results)
    for g in groups:
        curves = []
        for r in g["runs"]:
            hist = [h for h in r["history"] if key in h]
            if hist:
                curves.append(([h["epoch"] for h in hist], [(100 if pct else 1) * h[key] for h in hist]))
        if not curves:
            continue
        epochs = curves[0][0]
        if any(c[0] != epochs for c in curves):
            raise ValueError(f"{g['label']}: its seeds recorded {key} at different epochs; plot them one by one")
        color, lab, lw, ls = _line_style(g, groups, highlight)
        _mean_band(ax, epochs, np.array([c[1] for c in curves]), color, lw, ls, lab,
                   marker="o" if len(epochs) < 15 else None, ms=3)
    ax.set(xlabel="epoch", ylabel=key.replace("_", " ") + (" (%)" if pct else ""),
           title=title or f"Learning curves: {key.replace('_', ' ')}")
    ax.legend(fontsize=8, ncol=2, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure


def symmetry_by_block(result: dict, metric: str = "cosine", epoch: Optional[int] = None) -> dict[str, np.ndarray]:
    """``{"tokens": (blocks,), "channels": (blocks,)}`` of a symmetry metric of one run.

    ``epoch=None`` uses the final report (``result["symmetry"]``), otherwise the entry of
    ``symmetry_history`` for that epoch.
    """
    if epoch is None:
        report = result.get("symmetry")
    else:
        report = next((e["report"] for e in result.get("symmetry_history") or [] if e["epoch"] == epoch), None)
    if not report:
        raise ValueError(f"run {result.get('label') or result.get('model')} has no symmetry report"
                         + (f" for epoch {epoch}" if epoch is not None else "")
                         + "; train with symmetry_metrics=True")
    out = {}
    for branch in ("tokens", "channels"):
        rows = sorted((r for r in report if r["branch"] == branch), key=lambda r: r["block"])
        out[branch] = np.array([r.get(metric, math.nan) for r in rows], dtype=float)
    return out


def symmetry_over_seeds(runs: Sequence[dict], metric: str = "cosine") -> dict[str, np.ndarray]:
    """``{"tokens": (seeds, blocks), "channels": (seeds, blocks)}``: :func:`symmetry_by_block` of
    each run (the seeds of one configuration) stacked; runs without a report are left out."""
    per = []
    for r in runs:
        try:
            per.append(symmetry_by_block(r, metric))
        except ValueError:
            continue
    if not per:
        raise ValueError(f"none of {len(runs)} runs has a symmetry report; train with symmetry_metrics=True")
    return {b: np.stack([p[b] for p in per]) for b in ("tokens", "channels")}


METRIC_LABELS = {
    "cosine": "cos∠(W2, W1ᵀ)",
    "rel_distance": "‖W2 − W1ᵀ‖ / (‖W1‖ + ‖W2‖)",
    "norm_ratio": "‖W2‖ / ‖W1‖",
    "product_sym_share": "symmetric share of W2 W1",
    "product_psd_share": "PSD share of sym(W2 W1)",
    "v_ratio": "‖V‖ / ‖A‖",
}


def plot_symmetry_blocks(results: Sequence[dict], metric: str = "cosine", axes=None, title: Optional[str] = None,
                         highlight: Optional[str] = None):
    """A symmetry metric per block, token branch (left) and channel branch (right), one line per
    configuration (mean over seeds, ±1 sd band for several). Returns the figure."""
    from .. import viz

    _one_study(results, "plot_symmetry_blocks")
    if axes is None:
        _, axes = viz.panels(2, row_height=3.4, sharey=True)
    groups = group_runs(results)
    for g in groups:
        try:
            m = symmetry_over_seeds(g["runs"], metric)
        except ValueError:
            continue
        color, lab, lw, ls = _line_style(g, groups, highlight)
        for ax, branch in zip(axes, ("tokens", "channels")):
            _mean_band(ax, np.arange(m[branch].shape[1]), m[branch], color, lw, ls, lab, marker="o", ms=3)
    from matplotlib.ticker import MaxNLocator

    for ax, branch in zip(axes, ("tokens", "channels")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="block", ylabel=METRIC_LABELS.get(metric, metric))
        ax.set_title(f"{branch} MLPs:\n{METRIC_LABELS.get(metric, metric)}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, ncol=2, loc="best")
    if title:
        axes[0].figure.suptitle(title)
    return axes[0].figure


def plot_symmetry_history(results: Sequence[dict], metric: str = "cosine", ax=None, title: Optional[str] = None,
                          branch: Optional[str] = None, linestyle: Optional[str] = None, label_suffix: str = ""):
    """Block-mean of a symmetry metric (both branches, or one ``branch``) against the epoch, one
    line per configuration (mean over seeds, ±1 sd band for several); ``linestyle`` and
    ``label_suffix`` tell apart two calls on the same axes. Returns the figure."""
    _one_study(results, "plot_symmetry_history")
    if branch not in (None, "tokens", "channels"):
        raise ValueError(f"branch must be None, 'tokens' or 'channels', got {branch!r}")
    ax = _ax(ax, (6.4, 4.2))
    groups = group_runs(results)
    for g in groups:
        curves = []
        for r in g["runs"]:
            hist = r.get("symmetry_history") or []
            if hist:
                curves.append(([e["epoch"] for e in hist],
                               [np.nanmean([row.get(metric, math.nan) for row in e["report"]
                                            if branch is None or row["branch"] == branch]) for e in hist]))
        if not curves or any(c[0] != curves[0][0] for c in curves):
            continue
        color, lab, lw, ls = _line_style(g, groups, None)
        _mean_band(ax, curves[0][0], np.array([c[1] for c in curves]), color, 1.5, linestyle or ls,
                   lab + label_suffix, marker="o", ms=3)
    what = "block mean" if branch is None else f"{branch}: block mean"
    ax.set(xlabel="epoch", ylabel=f"{what} of\n{METRIC_LABELS.get(metric, metric)}",
           title=title or "Weight symmetry during training")
    ax.legend(fontsize=8, ncol=2, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure


# ------------------------------------------------------------------------------------------ live runs
FULL_LIVE_EPOCHS = 12
"""Epochs of the full-mode live runs: the length of the committed 12-epoch study, so the two compare."""


def live_config(model: str, lam: Optional[float] = None, n_iter: int = 1, quick: Optional[bool] = None,
                dataset: Optional[str] = None, epochs: Optional[int] = None, seed: int = 0, init: str = "random",
                **fields):
    """A :class:`~hopfield_lab.train.TrainConfig` for a live run of ``model`` (a family name);
    ``lam`` is the model's λ (None: the preset's; nonzero only for AsymMixer).

    Quick mode: the ``*_cifar_tiny`` preset (depth 2, C = 64) on scikit-learn's 8x8 digits with
    2x2 patches (16 tokens), 6 epochs, batch 64, lr 1e-2, 1-px crop jitter, on the CPU: a few
    seconds per run. Full mode: the ``*_cifar_small`` preset (depth 8, C = 256) on CIFAR-10 with
    the set-up of the GPU study (batch 512, lr 1e-3 one-cycle, pad-4 crop + flip),
    :data:`FULL_LIVE_EPOCHS` epochs, bf16 autocast only on GPUs with bf16 tensor cores
    (:func:`hopfield_lab.perf.amp_dtype`). ``init="tied"`` starts every MLP at W2 = W1ᵀ (the
    model option). ``fields`` override any :class:`TrainConfig` field.
    """
    from ...runtime import quick as _quick
    from ...training.train import TrainConfig

    fam = family_of(model).name
    q = _quick() if quick is None else quick
    over = dict(fields.pop("model_overrides", {}) or {})
    if n_iter != 1:
        over["n_iter"] = int(n_iter)
    if init != "random":
        over["init"] = init
    if q:
        over.setdefault("img_size", 8)
        over.setdefault("patch_size", 2)
        cfg = dict(model=f"{fam}_cifar_tiny", dataset=dataset or "digits", epochs=epochs or 6, batch_size=64,
                   lr=1e-2, crop_padding=1, flip=False, device="cpu", progress=False)
    else:
        cfg = dict(model=f"{fam}_cifar_small", dataset=dataset or "cifar10", epochs=epochs or FULL_LIVE_EPOCHS,
                   batch_size=512, lr=1e-3, crop_padding=4, flip=True, progress=True)
    cfg.update(lam=lam, seed=seed, model_overrides=over)  # λ: the model's option (None: the preset's)
    cfg.update(fields)
    return TrainConfig(**cfg)


def quick_run(model: str, lam: Optional[float] = None, n_iter: int = 1, **kw) -> dict:
    """Train one live run with :func:`live_config` (``init="tied"`` for a tied start) and return the result dict, with ``family``,
    ``n_iter``, ``label`` and ``study`` added (as :func:`load_results` adds them)."""
    from ...training.train import train

    return _view(train(live_config(model, lam=lam, n_iter=n_iter, **kw)))


T4_OVER_H100 = 1 / 15
"""Assumed throughput of a Colab T4 relative to the H100 of the committed study, for these models.

The T4 has no bf16 tensor cores, so the live run trains in float32 there: its float32 peak is
8.1 TFLOP/s, of which dense matrix products reach about half, ~4 TFLOP/s. The H100 runs of the
study trained at about 33,000 img/s (their files) with 1.8 GFLOP per image (forward and backward,
counted by ``torch.utils.flop_counter``), ~60 TFLOP/s. 4/60 ≈ 1/15. An estimate, not a
measurement on a T4."""


def full_mode_estimate(plan: Sequence[tuple[str, Optional[float]]], study: Sequence[dict],
                       epochs: int = FULL_LIVE_EPOCHS, ratio: float = T4_OVER_H100) -> dict:
    """Expected wall time of live runs on a Colab T4, from the H100 study's measured times.

    ``plan``: ``[(family, λ or None), ...]`` of the runs; ``study``: the committed runs (one study),
    whose ``wall_time_s / epochs_done`` per epoch (training, evaluation and symmetry metrics) is
    the measured H100 time; the T4 time is that divided by ``ratio`` (:data:`T4_OVER_H100`) and
    scaled to ``epochs``. Returns ``{"runs": [(label, h100_s_per_epoch, t4_s)], "t4_s", "h100_s",
    "img_per_s", "text"}``; ``text`` is the line the chapter prints, labelled as an estimate.
    """
    _one_study(study, "full_mode_estimate")
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio is the T4's share of the H100's throughput, in (0, 1]; got {ratio!r}")
    rows, ips = [], []
    for fam, lam in plan:
        fam = family_of(fam).name
        match = [r for r in study if family_of(r["model"]).name == fam and n_iter_of(r) == 1
                 and (lam is None or r.get("lam") is not None and float(r["lam"]) == float(lam))]
        if not match:
            raise ValueError(f"no run of {fam}{'' if lam is None else f' λ={format_lam(lam)}'} in the study "
                             "to time it by; plan only configurations the study has")
        per_epoch = float(np.mean([r["wall_time_s"] / r["epochs_done"] for r in match]))
        ips += [r["img_per_s"] for r in match if r.get("img_per_s")]
        rows.append((label({"model": fam, "lam": lam}), per_epoch, per_epoch * epochs / ratio))
    h100 = sum(r[1] for r in rows) * epochs
    t4 = sum(r[2] for r in rows)
    device = _distinct(r.get("device") for r in study)
    text = (f"Expected time on a Colab T4 (an estimate): about {t4 / 60:.0f} min. {len(rows)} runs x {epochs} epochs "
            f"take {h100:.0f} s on the study's {device} ({h100 / len(rows) / epochs:.1f} s per epoch with evaluation, "
            f"{np.mean(ips):,.0f} training img/s: measured, from its files); a T4 is assumed {1 / ratio:.0f}x slower "
            f"(float32, demo.T4_OVER_H100). The CIFAR-10 download comes on top.")
    return {"runs": rows, "t4_s": t4, "h100_s": h100, "img_per_s": float(np.mean(ips)) if ips else None,
            "text": text}


def init_cosines(seed: int = 0) -> dict[str, tuple[float, float]]:
    """cos∠(W2, W1ᵀ) at initialisation, block mean per branch: ``{family: (tokens, channels)}`` of
    the ``*_cifar_small`` models built in family order after ``torch.manual_seed(seed)``."""
    from ...mixer import create_model
    from ...symmetry import summarize, symmetry_report

    torch.manual_seed(seed)
    out = {}
    for fam in FAMILIES:
        s = summarize(symmetry_report(create_model(f"{fam}_cifar_small")))
        out[fam] = (s["tokens"]["cosine"], s["channels"]["cosine"])
    return out


def block_iteration_energies(n_steps: int = 6, seed: int = 0) -> torch.Tensor:
    """Energy of two random states along ``n_steps`` plain iterations ``X <- block.step(X)`` of the
    first block of a ``symmixer_cifar_tiny`` with the Lagrangian LayerNorm, at initialisation, in
    float64: shape (n_steps, 2) (row k: after k iterations)."""
    from ...mixer import create_model

    torch.manual_seed(seed)
    block = create_model("symmixer_cifar_tiny", norm="lagrangian").double().blocks[0]
    x = torch.randn(2, 64, 64, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    energies = []
    with torch.no_grad():
        for _ in range(n_steps):
            energies.append(block.energy(x))
            x = block.step(x)                                   # one plain block iteration, no leak
    return torch.stack(energies)


# ------------------------------------------------------------------------------------------ exercise
def _reference_weight_cosine(W1: torch.Tensor, W2: torch.Tensor) -> torch.Tensor:
    inner = (W2 * W1.transpose(-1, -2)).sum(dim=(-2, -1))
    return inner / (torch.linalg.matrix_norm(W1) * torch.linalg.matrix_norm(W2))


def check_weight_cosine(fn) -> None:
    """Check a reader's ``fn(W1, W2)``: cos∠(W2, W1ᵀ) of eq. (ch8-cosine) for a stack of MLPs.

    ``W1`` has shape (..., hidden, in), ``W2`` (..., in, hidden); ``fn`` returns one cosine per
    MLP, shape (...). Prints one line (right, or what is wrong)."""
    from ..exercises import assert_close, check

    def test(f):
        gen = torch.Generator().manual_seed(0)
        h, n = 6, 4
        A = torch.randn(3, h, n, generator=gen, dtype=torch.float64)
        W2 = torch.stack([2.5 * A[0].T, -0.5 * A[1].T, torch.randn(n, h, generator=gen, dtype=torch.float64)])
        want = _reference_weight_cosine(A, W2)                              # (3,): 1, -1, random
        what = "cos for a stack of 3 MLPs (W2 = 2.5 W1ᵀ, W2 = −0.5 W1ᵀ, independent)"
        got = f(A, W2)
        if isinstance(got, torch.Tensor) and got.shape != want.shape:
            raise AssertionError(f"{what}: expected shape {tuple(want.shape)} (one cosine per MLP: sum over "
                                 f"the last two axes only), got {tuple(got.shape)}.")
        if isinstance(got, torch.Tensor) and torch.isfinite(got).all():
            g = got.detach().to(torch.float64)
            if torch.allclose(g, want.abs(), atol=1e-6) and not torch.allclose(g, want, atol=1e-6):
                raise AssertionError(f"{what}: W2 = −0.5 W1ᵀ must give −1, got {float(g[1]):+.3f}: keep the sign "
                                     "(no abs); anti-aligned weights have a negative cosine.")
            inner = (W2 * A.transpose(-1, -2)).sum(dim=(-2, -1))
            if torch.allclose(g, inner, atol=1e-6):
                raise AssertionError(f"{what}: you returned the inner product ⟨W2, W1ᵀ⟩; divide by "
                                     "‖W1‖_F ‖W2‖_F to make it scale-free.")
            flat = (W2.reshape(3, -1) * A.reshape(3, -1)).sum(-1) / (
                torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(W2))
            if torch.allclose(g, flat, atol=1e-6):
                raise AssertionError(f"{what}: you paired W2 with W1 entry by entry after flattening; pair "
                                     "(W2)_ij with (W1ᵀ)_ij = (W1)_ji (transpose W1's last two axes).")
        assert_close(got, want, what, atol=1e-9, rtol=1e-9)
        gen2 = torch.Generator().manual_seed(1)
        B1 = torch.randn(64, 16, generator=gen2, dtype=torch.float64)
        B2 = torch.randn(16, 64, generator=gen2, dtype=torch.float64)
        assert_close(f(B1, B2), _reference_weight_cosine(B1, B2), "cos for one MLP (64 hidden, 16 in)",
                     atol=1e-9, rtol=1e-9)

    check("Weight cosine cos∠(W2, W1ᵀ)", test, fn)


# ------------------------------------------------------------------------------------------ widget
def _draw_selection(axes, results, selected: dict, metric: str):
    """Redraw the widget's three panels for ``selected`` (a :func:`group_runs` configuration)."""
    for ax in axes:
        ax.clear()
    others = [r for r in results if not _breaks(r) and n_iter_of(r) == selected["n_iter"]]
    shown = others + list(selected["runs"])
    lab = selected["label"]
    plot_learning_curves(shown, "test_acc", ax=axes[0], highlight=lab, title=f"{lab}: test accuracy per epoch")
    plot_symmetry_blocks(shown, metric, axes=axes[1:], highlight=lab)
    lows = []
    for g in group_runs(shown):
        try:
            m = symmetry_over_seeds(g["runs"], metric)
        except ValueError:
            continue
        lows += [float(np.nanmin(m[b])) for b in ("tokens", "channels")]
    lo = min([0.0] + lows)
    for ax in axes[1:]:
        ax.set_ylim(lo - 0.05, 1.05)


def _asym_groups(results):
    _one_study(results, "the λ widget")
    groups = [g for g in group_runs(results) if family_of(g["model"]).has_breaking and g["lam"] is not None]
    if not groups:
        raise ValueError("no AsymMixer runs with a λ among the results: the widget selects one of them")
    return sorted(groups, key=lambda g: (g["n_iter"], float(g["lam"])))


def make_widget(results: Sequence[dict], metric: str = "cosine"):
    """The chapter's interactive demo: choose an AsymMixer configuration by its λ and a symmetry
    metric; see its learning curve and the per-block symmetry of its weights next to the other
    models (means over seeds where there are several).

    ``results`` are :func:`load_results` (or :func:`quick_run`) dicts of one study. Returns an
    ``ipywidgets.VBox`` with attributes ``controls`` (``lam``, ``metric``), ``update()`` (the
    callback) and ``last`` (``{"result", "runs", "label", "metric", "tokens", "channels"}``: the
    selected configuration's first run, all its runs, and its metric per block, mean over seeds).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    groups = _asym_groups(results)
    options = [(g["label"], i) for i, g in enumerate(groups)]
    controls = {
        "lam": w.SelectionSlider(options=options, value=0, description="AsymMixer", continuous_update=False,
                                 layout=w.Layout(width="420px")),
        "metric": w.Dropdown(options=[(METRIC_LABELS[m], m) for m in ("cosine", "rel_distance", "norm_ratio",
                                                                       "product_sym_share", "product_psd_share")],
                             value=metric, description="metric"),
    }
    out = w.Output()
    box = w.VBox([w.HBox([controls["lam"], controls["metric"]]), out])
    box.controls = controls
    box.last = None

    def update(*_):
        sel = groups[controls["lam"].value]
        m = controls["metric"].value
        with out:
            out.clear_output(wait=True)
            fig, axes = _selection_figure()
            _draw_selection(axes, results, sel, m)
            plt.show()
            plt.close(fig)
        per_seed = symmetry_over_seeds(sel["runs"], m)
        box.last = {"result": sel["runs"][0], "runs": sel["runs"], "label": sel["label"], "metric": m,
                    **{b: per_seed[b].mean(axis=0) for b in per_seed}}

    from ..viz import connect

    return connect(box, controls, update)


def lambda_player(results: Sequence[dict], metric: str = "cosine", interval: int = 900, dpi: int = 100):
    """Static twin of :func:`make_widget`: one frame per AsymMixer λ (same panels). Returns
    ``(player, labels)`` with the ``IPython.display.HTML`` player and the frame labels."""
    from .. import viz

    groups = _asym_groups(results)
    fig, axes = _selection_figure()

    def update(i):
        _draw_selection(axes, results, groups[i], metric)
        return []

    update(0)
    labels = [g["label"] for g in groups]
    alt = (f"Player over {len(groups)} AsymMixer configurations ({', '.join(labels)}). Top: test accuracy "
           "per epoch of every model, the shown configuration drawn thick; bottom: the weight "
           f"symmetry ({METRIC_LABELS.get(metric, metric)}) per block of the token MLPs (left) and of the "
           "channel MLPs (right), one line per configuration, the shown one thick.")
    return viz.animate(update, len(groups), fig, alt=alt, interval=interval, dpi=dpi), labels


def _selection_figure():
    """The widget's and the player's figure: the learning curves across the top, the symmetry
    per block of the two branches below them. Returns ``(fig, [ax_curves, ax_tokens, ax_channels])``."""
    import matplotlib.pyplot as plt

    from .. import viz

    fig = plt.figure(figsize=(viz.MAX_WIDTH_IN, 6.2), layout="constrained")
    gs = fig.add_gridspec(2, 2)
    top = fig.add_subplot(gs[0, :])
    left = fig.add_subplot(gs[1, 0])
    return fig, [top, left, fig.add_subplot(gs[1, 1], sharey=left)]
